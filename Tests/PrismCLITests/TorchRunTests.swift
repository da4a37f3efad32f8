import Foundation
import PrismTestSupport
import Testing

/// `prism train` on the torch backend (a tiny GPT-2 in PyTorch workers): a
/// stop by Ctrl-C leaves no worker process behind; SGPO on the word problems
/// runs on two torch.distributed ranks with the host and plugins unchanged.
@Suite("Torch runs")
struct TorchRunTests {
    let prism = TestSupport.productsDirectory.appendingPathComponent("prism").path

    @Test func ctrlCLeavesNoOrphanWorker() throws {
        let python = TestSupport.packageRoot.appendingPathComponent(".build-python/venv/bin/python").path
        try #require(FileManager.default.isExecutableFile(atPath: python), "run scripts/python-env (scripts/test does)")
        let dir = try TestSupport.temporaryDirectory("torch-run")
        _ = try TestSupport.run(prism, ["data", "arithmetic", "--count", "20", "--max-terms", "2", "--max-digits", "1",
                                        "--out", dir.path + "/train.jsonl"])
        try """
            model:
              plugin: PrismTorch
              config: {tiny: {vocab: "0123456789+=;#", d_model: 16, layers: 1, heads: 2, d_ff: 32, max_len: 32}, threads: 1}
            data: {train: \(dir.path)/train.jsonl, eval: ""}
            grpo: {group_size: 2, prompts_per_step: 2, max_new_tokens: 8}
            run: {steps: 100000, eval_every: 0, checkpoint_every: 0}
            """.write(toFile: dir.path + "/torch.yaml", atomically: true, encoding: .utf8)
        var workers: [pid_t] = []
        var commands: [String] = []
        let result = try TestSupport.runWhile(prism, ["train", dir.path + "/torch.yaml", "--run", dir.path + "/run"],
                                              when: { $0.contains("step 1/") }) { pid in
            workers = TestSupport.children(of: pid)
            commands = workers.map(TestSupport.commandLine)
            kill(pid, SIGINT)
        }
        #expect(result.status == 130, "\(result.stderr.suffix(600))")
        #expect(workers.count == 1 && commands.allSatisfy { $0.contains("prism_torch_worker.py") }, "\(commands)")
        #expect(FileManager.default.fileExists(atPath: dir.path + "/run/checkpoints/latest"))
        // The worker ends with its parent (end of its socket, and PR_SET_PDEATHSIG).
        let deadline = Date(timeIntervalSinceNow: 20)
        while workers.contains(where: TestSupport.isRunning) && Date() < deadline { usleep(20_000) }
        #expect(!workers.contains(where: TestSupport.isRunning), "orphan worker \(workers)")
    }

    /// The word-problem task end to end on 2 gloo ranks: SFT warm-start steps
    /// (backward and AdamW through both ranks), SGPO steps with the lines
    /// judge and the "Answer:" reward, a checkpoint, and a resume that loads
    /// it into both ranks and goes on.
    @Test func sgpoOnWordProblemsAcrossTwoRanks() throws {
        let python = TestSupport.packageRoot.appendingPathComponent(".build-python/venv/bin/python").path
        try #require(FileManager.default.isExecutableFile(atPath: python), "run scripts/python-env (scripts/test does)")
        let dir = try TestSupport.temporaryDirectory("torch-ranks-run")
        let data = try TestSupport.run(prism, ["data", "word-problems", "--count", "16", "--max-steps", "1", "--max-digits", "1",
                                               "--out", dir.path + "/train.jsonl"])
        #expect(data.status == 0, "\(data.stderr)")
        try #"""
            seed: 2
            model:
              plugin: PrismTorch
              config:
                tiny: {vocab: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,?:+-=*\"\n", d_model: 16, layers: 1, heads: 2, d_ff: 32, max_len: 400}
                world_size: 2
                threads: 1
            reward: {plugin: PrismExactAnswer, config: {marker: "Answer:", require_marker: true}}
            judge: {plugin: PrismStepJudge, config: {format: lines}}
            strategy: {name: sgpo}
            data: {train: train.jsonl, eval: ""}
            grpo: {group_size: 2, prompts_per_step: 2, max_new_tokens: 12}
            sft: {steps: 2, batch_size: 4}
            run: {steps: 2, eval_every: 0, checkpoint_every: 1}
            """#.write(toFile: dir.path + "/ranks.yaml", atomically: true, encoding: .utf8)
        let first = try TestSupport.run(prism, ["train", dir.path + "/ranks.yaml", "--run", dir.path + "/run"])
        #expect(first.status == 0, "\(first.stderr.suffix(1500))")
        let metrics = { () -> [[String: Any]] in
            let text = (try? String(contentsOfFile: dir.path + "/run/metrics.jsonl", encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        let steps = metrics().filter { $0["groups/total"] != nil }
        #expect(steps.count == 2, "\(steps)")
        for step in steps {
            #expect(step["feedback/errors"] as? Double == 0 && step["reward/errors"] as? Double == 0, "\(step)")
            #expect((step["tokens/generated"] as? Double ?? 0) > 0)
        }
        // Every all-negative group went to the lines judge.
        #expect(steps.allSatisfy { ($0["groups/diversified"] as? Double) == ($0["groups/all_negative"] as? Double) }, "\(steps)")

        let resumed = try TestSupport.run(prism, ["train", "--resume", dir.path + "/run", "--set", "run.steps=3"])
        #expect(resumed.status == 0, "\(resumed.stderr.suffix(1500))")
        #expect(metrics().filter { $0["groups/total"] != nil }.map { $0["step"] as? Int } == [1, 2, 3])
    }
}
