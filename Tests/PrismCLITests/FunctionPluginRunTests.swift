import Foundation
import PrismTestSupport
import Testing

/// `reward.function` and `judge.function` in real `prism train` runs: one
/// ordinary C library (Tests/Fixtures/functions.c) with several exported
/// functions serves as the reward and as SGPO's judge; malformed
/// declarations stop `prism train` with one line each.
@Suite("Function plugins in training runs")
struct FunctionPluginRunTests {
    let prism = TestSupport.productsDirectory.appendingPathComponent("prism").path
    let dir: URL

    init() throws {
        dir = try TestSupport.temporaryDirectory("function-runs")
        _ = try TestSupport.compileProgram(
            [TestSupport.fixture("functions.c")], name: "libfunctions.so",
            flags: ["-std=c11", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror"], in: dir)
        let data = try TestSupport.run(prism, ["data", "arithmetic", "--count", "40", "--max-terms", "3",
                                               "--max-digits", "1", "--out", dir.path + "/train.jsonl"])
        #expect(data.status == 0, "\(data.stderr)")
    }

    /// A config training SGPO with the functions; `extra` is appended.
    func config(reward: String = #"{library: ./libfunctions.so, symbol: answer_reward, signature: "d(ss)", correct_at: 1}"#,
                judge: String = #"{library: ./libfunctions.so, symbol: chain_judge, signature: "i(s)", separator: ";"}"#,
                name: String) throws -> String {
        let text = """
            model:
              config: {vocab: "0123456789+=;#", d_model: 16, layers: 1, heads: 2, d_ff: 32, max_len: 40}
            data: {train: train.jsonl, eval: ""}
            grpo: {group_size: 4, prompts_per_step: 3, max_new_tokens: 12}
            run: {steps: 3, eval_every: 0}
            strategy: {name: sgpo}
            reward:
              function: \(reward)
            judge:
              function: \(judge)
            """
        let path = dir.path + "/\(name).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func functionsServeAsRewardAndJudgeInATrainingRun() throws {
        let run = dir.path + "/run"
        let train = try TestSupport.run(prism, ["train", try config(name: "functions"), "--run", run])
        #expect(train.status == 0, "\(train.stderr)")
        let metrics = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(metrics.count == 3)
        for line in metrics {
            // The function gives a wrong answer 0.25 (the shipped plugin would give 0).
            #expect((line["reward"] as! Double) >= 0.25)
            #expect(line["feedback/errors"] as? Double == 0)
            #expect(line["reward/errors"] as? Double == 0)
        }
        // SGPO asked the judge about the all-wrong groups it met.
        #expect(metrics.map { $0["feedback/judged_tokens"] as! Double }.reduce(0, +) > 0)
        let samples = try String(contentsOfFile: run + "/samples.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(!samples.isEmpty)
        var judged = 0
        for sample in samples {
            let reward = sample["reward"] as! Double
            #expect(reward == 1 || reward == 0.25)
            #expect((sample["correct"] as! Bool) == (reward == 1))  // correct_at: 1 (an integer in YAML)
            guard let score = sample["judgeScore"] as? Double else { continue }
            // The score is the share of the completion's ';' steps before the first wrong one.
            let steps = (sample["completion"] as! String).split(separator: ";").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.count
            let before = score * Double(steps)
            #expect(steps == 0 ? score == 1 : abs(before - before.rounded()) < 1e-9 && (0...1).contains(score))
            judged += 1
        }
        #expect(judged > 0)
    }

    /// Every malformed declaration stops the run before any step with its own
    /// one-line error naming the key, and writes no run.
    @Test func malformedDeclarationsStopTheRunWithOneLineEach() throws {
        let cases: [(String, String, String)] = [
            ("letter", #"{library: ./libfunctions.so, symbol: answer_reward, signature: "d(sq)"}"#,
             "error: reward.function: signature \"d(sq)\": unknown type letter 'q' at position 4;"),
            ("symbol", #"{library: ./libfunctions.so, symbol: answer_rewrd, signature: "d(ss)"}"#,
             "error: reward.function: library \(dir.path)/libfunctions.so does not export the function 'answer_rewrd'"),
            ("role", #"{library: ./libfunctions.so, symbol: answer_reward, signature: "s(ss)"}"#,
             "error: reward.function: signature \"s(ss)\" does not fit a reward: the result must be i, l, f or d (the reward), got s"),
            ("load", #"{library: ./train.jsonl, symbol: answer_reward, signature: "d(ss)"}"#,
             "error: reward.function: library \(dir.path)/train.jsonl does not load: invalid ELF header"),
            ("key", #"{library: ./libfunctions.so, symbol: answer_reward, signature: "d(ss)", scale: 2}"#,
             "error: reward.function: unknown key 'scale'; expected library, symbol, signature, correct_at"),
            ("threshold", #"{library: ./libfunctions.so, symbol: answer_reward, signature: "d(ss)", correct_at: true}"#,
             "error: reward.function: correct_at: expected a number, got true"),
        ]
        var messages: Set<String> = []
        for (name, reward, expected) in cases {
            let run = dir.path + "/bad-\(name)"
            let train = try TestSupport.run(prism, ["train", try config(reward: reward, name: "bad-\(name)"), "--run", run])
            #expect(train.status == 1, "\(name): \(train.stderr)")
            let lines = train.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(name): \(train.stderr)")
            #expect(train.stderr.hasPrefix(expected), "\(name): \(train.stderr)")
            #expect(!FileManager.default.fileExists(atPath: run + "/metrics.jsonl"))
            messages.insert(train.stderr)
        }
        #expect(messages.count == cases.count)
        // A judge's result must be the first wrong step: a double is refused for the judge's role.
        let judge = try TestSupport.run(prism, ["train", try config(
            judge: #"{library: ./libfunctions.so, symbol: answer_reward, signature: "d(ss)"}"#, name: "bad-judge"),
            "--run", dir.path + "/bad-judge"])
        #expect(judge.stderr == "error: judge.function: signature \"d(ss)\" does not fit a judge: the result must be "
            + "i or l (the first wrong step, -1 for none), got d (double)\n")
    }
}
