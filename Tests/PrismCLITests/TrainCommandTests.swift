import Foundation
import PrismTestSupport
import Testing

/// The training commands of the built `prism` executable, end to end.
@Suite("prism train and friends")
struct TrainCommandTests {
    let prism = TestSupport.productsDirectory.appendingPathComponent("prism").path

    @Test func dataTrainEvalReportOnATinyModel() throws {
        let dir = try TestSupport.temporaryDirectory("cli-train")
        let data = try TestSupport.run(prism, ["data", "arithmetic", "--count", "50", "--max-terms", "3",
                                               "--max-digits", "1", "--out", dir.path + "/train.jsonl"])
        #expect(data.status == 0, "\(data.stderr)")
        let config = """
            model:
              config: {vocab: "0123456789+=;#", d_model: 16, layers: 1, heads: 2, d_ff: 32, max_len: 40}
            data:
              train: \(dir.path)/train.jsonl
              eval: \(dir.path)/train.jsonl
              eval_problems: 4
            grpo: {group_size: 2, prompts_per_step: 2, max_new_tokens: 12}
            eval: {k: 0, max_new_tokens: 12}
            run: {steps: 2, eval_every: 2}
            strategy: {name: sgpo}
            """
        try config.write(toFile: dir.path + "/tiny.yaml", atomically: true, encoding: .utf8)
        let run = dir.path + "/run"
        let train = try TestSupport.run(prism, ["train", dir.path + "/tiny.yaml", "--set", "seed=3", "--run", run])
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stdout.contains("held-out accuracy"))
        #expect(train.stderr.contains("step 2/2"))  // plain progress lines when not a terminal
        #expect(FileManager.default.fileExists(atPath: run + "/metrics.jsonl"))
        let eval = try TestSupport.run(prism, ["eval", dir.path + "/tiny.yaml", "--checkpoint",
                                               run + "/checkpoints/step-000002/model.safetensors"])
        #expect(eval.status == 0 && eval.stdout.hasPrefix("4 problems: accuracy"), "\(eval.stderr)")
        let report = try TestSupport.run(prism, ["report", run, run, "--out", dir.path + "/r.html"])
        #expect(report.status == 0)
    }

    /// Ctrl-C (a real SIGINT) stops after the current step with an intact
    /// checkpoint, and `--resume` continues from it.
    @Test func interruptLeavesACheckpointAndResumeContinues() throws {
        let dir = try TestSupport.temporaryDirectory("cli-interrupt")
        _ = try TestSupport.run(prism, ["data", "arithmetic", "--count", "20", "--max-terms", "2",
                                        "--max-digits", "1", "--out", dir.path + "/train.jsonl"])
        let config = """
            model:
              config: {vocab: "0123456789+=;#", d_model: 16, layers: 1, heads: 2, d_ff: 32, max_len: 32}
            data: {train: \(dir.path)/train.jsonl, eval: ""}
            grpo: {group_size: 2, prompts_per_step: 2, max_new_tokens: 8}
            run: {steps: 100000, eval_every: 0, checkpoint_every: 0}
            """
        try config.write(toFile: dir.path + "/long.yaml", atomically: true, encoding: .utf8)
        let run = dir.path + "/run"
        let first = try TestSupport.runInterrupting(prism, ["train", dir.path + "/long.yaml", "--run", run]) {
            $0.contains("step 1/")  // the first step is always reported
        }
        #expect(first.status == 130, "\(first.stderr.suffix(500))")
        #expect(first.stderr.contains("prism: SIGINT received; stopping at the next safe point"))
        let message = first.stdout.split(separator: "\n").first { $0.hasPrefix("interrupted after step ") }
        let number = message.map { String($0.dropFirst("interrupted after step ".count).prefix(while: \.isNumber)) }
        let stopped = try #require(number.flatMap { Int($0) }, "\(first.stdout)")
        #expect(stopped >= 1 && stopped < 100_000)
        let name = String(format: "step-%06d", stopped)
        let latest = try String(contentsOfFile: run + "/checkpoints/latest", encoding: .utf8)
        #expect(latest == name)
        #expect(FileManager.default.fileExists(atPath: run + "/checkpoints/\(name)/model.safetensors"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints").filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "half-written checkpoint left: \(leftovers)")

        let resumed = try TestSupport.run(prism, ["train", "--resume", run, "--set", "run.steps=\(stopped + 2)"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("resuming \(run) from step \(stopped)"))
        let steps = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8)
            .split(separator: "\n").map { line -> Int in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                return object?["step"] as? Int ?? -1
            }
        #expect(steps == Array(1...(stopped + 2)))
    }

    @Test func badInputGetsOneLineNamingWhere() throws {
        let dir = try TestSupport.temporaryDirectory("cli-bad")
        try "grpo:\n  group_sise: 4\n".write(toFile: dir.path + "/typo.yaml", atomically: true, encoding: .utf8)
        let typo = try TestSupport.run(prism, ["train", dir.path + "/typo.yaml"])
        #expect(typo.status == 1)
        #expect(typo.stderr.hasPrefix("error: \(dir.path)/typo.yaml: grpo.group_sise: unknown key; nearest valid names: grpo.group_size"))

        try "{\"prompt\": \"1+1=\", \"answer\": \"2\"}\n{\"prompt\": \"2+2=\"\n".write(
            toFile: dir.path + "/bad.jsonl", atomically: true, encoding: .utf8)
        let bad = try TestSupport.run(prism, ["train", "--set", "data.train=\(dir.path)/bad.jsonl"])
        #expect(bad.status == 1)
        #expect(bad.stderr == "error: \(dir.path)/bad.jsonl:2: not valid JSON\n")
    }

    @Test func configKeysDocumentationIsInSync() throws {
        let keys = try TestSupport.run(prism, ["config", "keys"])
        let doc = try String(contentsOf: TestSupport.packageRoot.appendingPathComponent("Documentation/Config.md"), encoding: .utf8)
        #expect(doc.contains(keys.stdout), "regenerate the table with: prism config keys")
    }

    @Test func metricsDocumentationIsInSync() throws {
        let metrics = try TestSupport.run(prism, ["config", "metrics"])
        #expect(metrics.stdout.contains("| `loss/approx_kl` |"))
        let doc = try String(contentsOf: TestSupport.packageRoot.appendingPathComponent("Documentation/Training.md"), encoding: .utf8)
        #expect(doc.contains(metrics.stdout), "regenerate the table with: prism config metrics")
    }
}
