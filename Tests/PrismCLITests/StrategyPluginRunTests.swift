import Foundation
import PrismTestSupport
import Testing

/// A strategy plugin in plain C drives a real training run.
@Suite("Strategy plugins in prism train")
struct StrategyPluginRunTests {
    let prism = TestSupport.productsDirectory.appendingPathComponent("prism").path

    /// The example GRPO strategy (SDK/examples/grpo_strategy.c, built by cc
    /// from SDK/include alone) and the built-in `grpo` give the same run:
    /// every loss, advantage and reward of every step is equal.
    @Test func theCExampleTrainsExactlyLikeTheBuiltIn() throws {
        let dir = try TestSupport.temporaryDirectory("cli-strategy")
        let plugin = try TestSupport.compilePlugin(
            [TestSupport.packageRoot.appendingPathComponent("SDK/examples/grpo_strategy.c").path],
            name: "grpo_strategy", in: dir)
        let data = try TestSupport.run(prism, ["data", "arithmetic", "--count", "40", "--max-terms", "2",
                                               "--max-digits", "1", "--out", dir.path + "/train.jsonl"])
        #expect(data.status == 0, "\(data.stderr)")
        let config = """
            model:
              config: {vocab: "0123456789+=;#", d_model: 16, layers: 1, heads: 2, d_ff: 32, max_len: 32}
            data: {train: \(dir.path)/train.jsonl, eval: ""}
            grpo: {group_size: 4, prompts_per_step: 3, max_new_tokens: 8}
            sft: {steps: 60, batch_size: 16, lr: 0.01}
            run: {steps: 4, eval_every: 0, checkpoint_every: 0}
            """
        try config.write(toFile: dir.path + "/tiny.yaml", atomically: true, encoding: .utf8)
        func train(_ name: String, _ settings: [String]) throws -> [[String: Double]] {
            let run = dir.path + "/" + name
            let result = try TestSupport.run(
                prism, ["train", dir.path + "/tiny.yaml", "--run", run] + settings.flatMap { ["--set", $0] })
            #expect(result.status == 0, "\(result.stderr)")
            let text = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8)
            return try text.split(separator: "\n").map { line in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return object.compactMapValues { ($0 as? NSNumber)?.doubleValue }
                    .filter { !$0.key.hasPrefix("time/") && $0.key != "tokens_per_s" }
            }
        }
        let builtIn = try train("builtin", ["strategy.name=grpo"])
        let plugin1 = try train("plugin", ["strategy.plugin=\(plugin)"])
        #expect(builtIn.count == 4)
        #expect(plugin1 == builtIn)
        // The runs learned something: some step had a non-zero advantage.
        #expect(builtIn.contains { ($0["advantages/max"] ?? 0) > 0 })
    }

    @Test func aStrategyPluginThatNeedsAJudgeIsRefusedWithoutOne() throws {
        let dir = try TestSupport.temporaryDirectory("cli-strategy-judge")
        let source = try String(
            contentsOf: TestSupport.packageRoot.appendingPathComponent("SDK/examples/grpo_strategy.c"), encoding: .utf8)
            .replacingOccurrences(of: ".flags = 0, /* no judge needed */", with: ".flags = PRISM_STRATEGY_NEEDS_JUDGE,")
        try source.write(toFile: dir.path + "/needs_judge.c", atomically: true, encoding: .utf8)
        let plugin = try TestSupport.compilePlugin([dir.path + "/needs_judge.c"], name: "needs_judge", in: dir)
        _ = try TestSupport.run(prism, ["data", "arithmetic", "--count", "4", "--out", dir.path + "/train.jsonl"])
        let result = try TestSupport.run(prism, [
            "train", "--set", "data.train=\(dir.path)/train.jsonl", "--set", "strategy.plugin=\(plugin)",
            "--set", "judge.plugin=", "--run", dir.path + "/run",
        ])
        #expect(result.status == 1)
        #expect(result.stderr == "error: strategy.plugin \(plugin) needs a judge; set judge.plugin\n")
    }
}
