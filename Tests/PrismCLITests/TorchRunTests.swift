import Foundation
import PrismTestSupport
import Testing

/// `prism train` on the torch backend (a tiny GPT-2 in a PyTorch worker):
/// a stop by Ctrl-C leaves no worker process behind.
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
}
