import Foundation
import PrismTestSupport
import Testing

/// The LLM judge in `prism` against the scripted chat server on 127.0.0.1:
/// the conformance suite with an endpoint, and a short SGPO training run
/// whose all-wrong groups are re-rewarded from the server's verdicts.
@Suite("LLM judge in prism")
struct LLMJudgeRunTests {
    let prism = TestSupport.productsDirectory.appendingPathComponent("prism").path
    let judge = TestSupport.plugin("PrismLLMJudge")

    @Test func passesTheConformanceSuiteAgainstAnEndpoint() throws {
        let server = try ScriptedServer()
        let check = try TestSupport.run(prism, ["plugins", "check", judge, "--calls", "20",
                                                "--config", #"{"base_url": "\#(server.baseURL)", "steps": "separator", "separator": ";"}"#])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("PASS  feedback: deterministic"))
        #expect(check.stdout.hasSuffix(" passed, 0 failed\n"))
        // Without an endpoint the default check names the plugin and skips it.
        let all = try TestSupport.run(prism, ["plugins", "check", "--calls", "5"])
        #expect(all.stdout.contains("libPrismLLMJudge.so\n  SKIP  needs a config (config key 'base_url': required"), "\(all.stdout)")
    }

    /// `prism bench judge` against a judge that is always right (the scripted
    /// server computes the arithmetic): agreement 1, and every answer on file.
    @Test func theAgreementBenchmarkRunsAgainstAnEndpoint() throws {
        let server = try ScriptedServer()
        let out = try TestSupport.temporaryDirectory("bench-judge").path + "/answers.jsonl"
        let bench = try TestSupport.run(prism, ["bench", "judge", "--count", "20", "--out", out,
                                                "--config", #"{"base_url": "\#(server.baseURL)"}"#])
        #expect(bench.status == 0, "\(bench.stderr)")
        #expect(bench.stdout.contains("first error exactly right: 1.000 (20)"), "\(bench.stdout)")
        #expect(bench.stdout.contains("said \"no error\" (-1):      0.000 (0)"))
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(lines.count == 20 && lines.allSatisfy { $0["judged"] as? Int == $0["first_error"] as? Int })
    }

    @Test func sgpoReRewardsAllWrongGroupsFromTheVerdicts() throws {
        let server = try ScriptedServer()
        let dir = try TestSupport.temporaryDirectory("llm-judge-run")
        let data = try TestSupport.run(prism, ["data", "arithmetic", "--count", "200", "--max-terms", "3",
                                               "--max-digits", "1", "--out", dir.path + "/train.jsonl"])
        #expect(data.status == 0, "\(data.stderr)")
        // A short warm start so that answers are chains whose steps the judge can tell apart.
        let config = """
            model:
              config: {vocab: "0123456789+=;#", d_model: 32, layers: 2, heads: 2, d_ff: 64, max_len: 40}
            data: {train: train.jsonl, eval: ""}
            sft: {steps: 300}
            grpo: {group_size: 4, prompts_per_step: 4, max_new_tokens: 16}
            run: {steps: 4, eval_every: 0}
            strategy: {name: sgpo}
            judge:
              plugin: PrismLLMJudge
              config: {base_url: "\(server.baseURL)", steps: separator, separator: ";", max_parallel: 4}
            """
        try config.write(toFile: dir.path + "/llm.yaml", atomically: true, encoding: .utf8)
        let run = dir.path + "/run"
        let train = try TestSupport.run(prism, ["train", dir.path + "/llm.yaml", "--run", run])
        #expect(train.status == 0, "\(train.stderr)")
        let metrics = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(metrics.count == 4)
        func total(_ key: String) -> Double { metrics.map { $0[key] as? Double ?? 0 }.reduce(0, +) }
        #expect(total("feedback/errors") == 0)
        #expect(total("feedback/requests") > 0 && total("groups/diversified") > 0 && total("responses/diversified") > 0)
        // The judge's usage is what the budget is charged (prompt + completion tokens, as the server counted).
        #expect(total("feedback/judged_tokens") == total("feedback/judge_prompt_tokens") + total("feedback/judge_completion_tokens"))
        #expect(total("feedback/judge_completion_tokens") == total("feedback/requests"))  // the server writes 1 token
        // Every judged sample's score is the server's verdict: the share of its steps before the first wrong one.
        let verdicts = try server.stats().verdicts
        #expect(verdicts.count == Int(total("feedback/requests")))
        let samples = try String(contentsOfFile: run + "/samples.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        var checked = 0
        for sample in samples {
            guard let score = sample["judgeScore"] as? Double, sample["correct"] as? Bool == false else { continue }
            let steps = (sample["completion"] as! String).split(separator: ";", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !steps.isEmpty, let verdict = verdicts.first(where: { $0.steps == steps })?.verdict else { continue }
            #expect(score == (verdict == -1 ? 1 : Double(verdict) / Double(steps.count)), "\(sample) vs \(verdict)")
            checked += 1
        }
        #expect(checked > 0)
    }

    /// A judge that fails (here: the server refuses its key) leaves the groups
    /// undiversified, is counted and logged, and the run finishes; the key
    /// itself is never written: not to the run directory, not to the log.
    /// The judge runs in a runner process, so its report crosses the wire too.
    @Test func theRunGoesOnWhenTheJudgeFailsAndTheKeyIsNeverWritten() throws {
        let server = try ScriptedServer(environment: ["EXPECTED_AUTHORIZATION": "Bearer the-right-key"])
        let dir = try TestSupport.temporaryDirectory("llm-judge-failing")
        _ = try TestSupport.run(prism, ["data", "arithmetic", "--count", "40", "--max-terms", "2",
                                        "--max-digits", "1", "--out", dir.path + "/train.jsonl"])
        let config = """
            model:
              config: {vocab: "0123456789+=;#", d_model: 16, layers: 1, heads: 2, d_ff: 32, max_len: 32}
            data: {train: train.jsonl, eval: ""}
            grpo: {group_size: 2, prompts_per_step: 2, max_new_tokens: 8}
            run: {steps: 2, eval_every: 0}
            strategy: {name: sgpo}
            judge:
              plugin: PrismLLMJudge
              isolation: process
              config: {base_url: "\(server.baseURL)", steps: separator, separator: ";", api_key_env: PRISM_TEST_WRONG_KEY,
                       max_retries: 0}
            """
        try config.write(toFile: dir.path + "/failing.yaml", atomically: true, encoding: .utf8)
        let run = dir.path + "/run"
        let train = try TestSupport.run(prism, ["train", dir.path + "/failing.yaml", "--run", run],
                                        environment: ["PRISM_TEST_WRONG_KEY": "sk-wrong-8086"])
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stderr.contains("judge call(s) failed: org.prism.llm-judge: assess failed with status 5 (I/O error): "), "\(train.stderr)")
        #expect(train.stderr.contains("HTTP 401"))
        let metrics = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(metrics.count == 2)
        #expect(metrics.map { $0["feedback/errors"] as? Double ?? 0 }.reduce(0, +) > 0)
        #expect(metrics.map { $0["feedback/http_errors"] as? Double ?? 0 }.reduce(0, +) > 0)
        #expect(metrics.allSatisfy { $0["groups/diversified"] as? Double == 0 })
        #expect(try server.stats().authorization.allSatisfy { $0 == "Bearer sk-wrong-8086" })  // it was sent
        let written = try FileManager.default.subpathsOfDirectory(atPath: run).compactMap {
            FileManager.default.contents(atPath: run + "/" + $0)
        }
        #expect(!written.isEmpty)
        #expect(!written.contains { String(decoding: $0, as: UTF8.self).contains("sk-wrong-8086") })
        #expect(!train.stdout.contains("sk-wrong-8086") && !train.stderr.contains("sk-wrong-8086"))
        #expect(try String(contentsOfFile: run + "/config.yaml", encoding: .utf8).contains("PRISM_TEST_WRONG_KEY"))
    }
}
