import Foundation
import PrismTestSupport
import Testing

/// Runs nothing can lose (issue #12), each finding reproduced through the
/// real `prism` executable: run directories, verified checkpoints, data
/// checked up front, plugins that crash, hang or return NaN (built with cc
/// here), signals and exit codes.
@Suite("Run safety")
struct RunSafetyTests {
    let prism = TestSupport.productsDirectory.appendingPathComponent("prism").path
    let dir: URL

    init() throws {
        dir = try TestSupport.temporaryDirectory("cli-safety")
        let data = try TestSupport.run(prism, ["data", "arithmetic", "--count", "200", "--max-terms", "2",
                                               "--max-digits", "1", "--out", dir.path + "/train.jsonl"])
        #expect(data.status == 0, "\(data.stderr)")
        try """
            model:
              config: {vocab: "0123456789+=;#", d_model: 16, layers: 1, heads: 2, d_ff: 32, max_len: 32}
            data: {train: \(dir.path)/train.jsonl, eval: ""}
            grpo: {group_size: 2, prompts_per_step: 2, max_new_tokens: 8}
            run: {steps: 6, eval_every: 0, checkpoint_every: 1}
            """.write(toFile: dir.path + "/tiny.yaml", atomically: true, encoding: .utf8)
    }

    var tiny: String { dir.path + "/tiny.yaml" }

    func misbehaving(_ define: String) throws -> String {
        try TestSupport.compilePlugin([TestSupport.fixture("misbehaving.c")],
                                      name: define.lowercased().replacingOccurrences(of: "=", with: "_"),
                                      defines: [define], in: dir)
    }

    func metrics(_ run: String) throws -> [[String: Any]] {
        try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    func checkpoints(_ run: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints").filter { $0.hasPrefix("step-") }.sorted()
    }

    // MARK: - Run directories

    /// Finding 1: a second `prism train` into the same run is refused and
    /// loses nothing; --overwrite moves the old run aside.
    @Test func rerunWithoutResumeIsRefusedAndOverwriteMovesTheRunAside() throws {
        let run = dir.path + "/run"
        #expect(try TestSupport.run(prism, ["train", tiny, "--run", run]).status == 0)
        let before = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8)
        let again = try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "run.steps=2"])
        #expect(again.status == 1)
        #expect(again.stderr == "error: \(run): holds a run already; continue it with --resume \(run), "
            + "or start again with --overwrite (the old run is moved aside, not deleted)\n")
        #expect(try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8) == before)

        let fresh = try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "run.steps=2", "--overwrite"])
        #expect(fresh.status == 0, "\(fresh.stderr)")
        #expect(try metrics(run).count == 2)
        let aside = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("run.replaced-") }
        #expect(aside.count == 1)
        #expect(try String(contentsOfFile: dir.path + "/" + aside[0] + "/metrics.jsonl", encoding: .utf8) == before)
    }

    /// Finding 2: a second writer is refused while the first runs, naming its pid.
    @Test func aSecondWriterIsRefusedNamingTheHolder() throws {
        let run = dir.path + "/locked"
        var second: TestSupport.ProcessResult?
        var holder: Int32 = 0
        let first = try TestSupport.runWhile(prism, ["train", tiny, "--run", run, "--set", "run.steps=100000"],
                                             when: { $0.contains("step 1/") }) { pid in
            holder = pid
            second = try? TestSupport.run(self.prism, ["train", "--resume", run])
            kill(pid, SIGTERM)
        }
        #expect(first.status == 143, "\(first.stderr.suffix(400))")
        let refused = try #require(second)
        #expect(refused.status == 1)
        #expect(refused.stderr.hasPrefix("error: \(run): in use by process \(holder) (it holds \(run)/.lock)"), "\(refused.stderr)")
        let steps = try metrics(run).map { $0["step"] as! Int }
        #expect(steps == Array(1...steps.count))  // one writer's lines only
    }

    /// `--resume` refuses a change to a key that defines the run unless
    /// forced, and records what changed.
    @Test func resumeRefusesDefiningChangesUnlessForced() throws {
        let run = dir.path + "/changes"
        #expect(try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "run.steps=2"]).status == 0)
        let refused = try TestSupport.run(prism, ["train", "--resume", run, "--set", "seed=99", "--set", "run.steps=3"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("--resume would change seed (0 -> 99)"), "\(refused.stderr)")
        #expect(try String(contentsOfFile: run + "/config.yaml", encoding: .utf8).contains("seed: 0"))
        let forced = try TestSupport.run(prism, ["train", "--resume", run, "--set", "seed=99", "--set", "run.steps=3", "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        let record = try String(contentsOfFile: run + "/changes.jsonl", encoding: .utf8)
        let object = try JSONSerialization.jsonObject(with: Data(record.utf8)) as! [String: Any]
        let changed = object["changed"] as! [String: [String: String]]
        #expect(object["step"] as? Int == 2)
        #expect(changed["seed"] == ["from": "0", "to": "99"] && changed["run.steps"] == ["from": "2", "to": "3"])
    }

    // MARK: - Verified checkpoints

    /// Finding 3: a tampered state.json, a flipped weight byte and a
    /// deleted `latest` never load silently: the newest checkpoint that
    /// verifies wins, with a warning naming the file, and the metrics are
    /// cut at its step.
    @Test func damagedCheckpointsFallBackToTheNewestThatVerifies() throws {
        let run = dir.path + "/verified"
        #expect(try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "run.keep_checkpoints=0"]).status == 0)
        // Step 6: state.json says step 3. Step 5: one weight byte flipped.
        let state6 = run + "/checkpoints/step-000006/state.json"
        let text = try String(contentsOfFile: state6, encoding: .utf8)
        try text.replacingOccurrences(of: "\"step\":6", with: "\"step\":3").write(toFile: state6, atomically: true, encoding: .utf8)
        let weights5 = run + "/checkpoints/step-000005/model.safetensors"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: weights5))
        bytes[bytes.count - 3] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: weights5))
        try FileManager.default.removeItem(atPath: run + "/checkpoints/latest")

        let resumed = try TestSupport.run(prism, ["train", "--resume", run, "--set", "run.steps=7"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("skipping checkpoint step-000006: \(state6): SHA-256 differs from the manifest"), "\(resumed.stderr)")
        #expect(resumed.stderr.contains("skipping checkpoint step-000005: \(weights5): SHA-256 differs from the manifest"))
        #expect(resumed.stderr.contains("resuming \(run) from step 4"))
        #expect(try metrics(run).map { $0["step"] as! Int } == [1, 2, 3, 4, 5, 6, 7])

        // A truncated state.json without a manifest to vouch for it names the file too.
        let all = try TestSupport.run(prism, ["train", "--resume", run, "--set", "run.steps=8"])
        #expect(all.status == 0)
        for name in try checkpoints(run) {
            try "{\"step\":".write(toFile: run + "/checkpoints/\(name)/state.json", atomically: true, encoding: .utf8)
        }
        let none = try TestSupport.run(prism, ["train", "--resume", run, "--set", "run.steps=9"])
        #expect(none.status == 1)
        #expect(none.stderr.contains("error: \(run)/checkpoints: no usable checkpoint among"), "\(none.stderr)")
        #expect(none.stderr.contains("state.json: 8 bytes, the manifest says"))
    }

    /// Checkpoints are pruned to the newest N plus every K-th step.
    @Test func retentionKeepsTheNewestAndEveryKth() throws {
        let run = dir.path + "/retention"
        let result = try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "run.steps=9",
                                                 "--set", "run.keep_checkpoints=2", "--set", "run.keep_checkpoint_every=4"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try checkpoints(run) == ["step-000004", "step-000008", "step-000009"])

        // A run from before manifests (none of its checkpoints has one) still resumes, unverified.
        for name in try checkpoints(run) { try FileManager.default.removeItem(atPath: run + "/checkpoints/\(name)/manifest.json") }
        let legacy = try TestSupport.run(prism, ["train", "--resume", run, "--set", "run.steps=10"])
        #expect(legacy.status == 0, "\(legacy.stderr)")
        #expect(legacy.stderr.contains("\(run)/checkpoints/step-000009 was written before checkpoints had manifests; it is used unverified"))
        #expect(legacy.stderr.contains("resuming \(run) from step 9"))
    }

    /// The kill -9 check: a run killed at any point and resumed ends
    /// bit-identical (weights and metrics) to one never interrupted.
    @Test func killNineThenResumeIsBitExact() throws {
        let straight = dir.path + "/straight"
        #expect(try TestSupport.run(prism, ["train", tiny, "--run", straight]).status == 0)
        let killed = dir.path + "/killed"
        let first = try TestSupport.runInterrupting(prism, ["train", tiny, "--run", killed], signal: SIGKILL) {
            $0.contains("step 1/")  // the first step is always reported
        }
        #expect(first.status == SIGKILL || first.status == 128 + SIGKILL, "\(first.status)")
        let resumed = try TestSupport.run(prism, ["train", "--resume", killed])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let a = try Data(contentsOf: URL(fileURLWithPath: straight + "/checkpoints/step-000006/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: killed + "/checkpoints/step-000006/model.safetensors"))
        #expect(a == b)
        func stable(_ lines: [[String: Any]]) -> [String] {
            lines.map { line in
                line.filter { !$0.key.hasPrefix("time/") && $0.key != "tokens_per_s" && !$0.key.hasPrefix("feedback/latency") }
                    .sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            }
        }
        #expect(stable(try metrics(straight)) == stable(try metrics(killed)))

        // A metrics line cut short by a crash while writing does not block the resume.
        try FileHandle(forWritingAtPath: killed + "/metrics.jsonl").map { handle in
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(#"{"step":7,"rew"#.utf8))
            try handle.close()
        }
        let torn = try TestSupport.run(prism, ["train", "--resume", killed, "--set", "run.steps=7"])
        #expect(torn.status == 0, "\(torn.stderr)")
        #expect(torn.stderr.contains("metrics.jsonl:7: the last line is cut short (a crash while writing?); it is dropped"))
        #expect(try metrics(killed).map { $0["step"] as! Int } == Array(1...7))
    }

    // MARK: - Data checked up front

    /// Finding 4: a bad line 151 stops the run before step 1, naming file,
    /// line and limit; nothing is written.
    @Test func aBadLineIsCaughtBeforeStepOne() throws {
        var lines = try String(contentsOfFile: dir.path + "/train.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
        lines[150] = #"{"prompt": "1+x=", "answer": "1"}"#
        try (lines.joined(separator: "\n") + "\n").write(toFile: dir.path + "/bad.jsonl", atomically: true, encoding: .utf8)
        let run = dir.path + "/bad-run"
        let oov = try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "data.train=\(dir.path)/bad.jsonl"])
        #expect(oov.status == 1)
        #expect(oov.stderr.hasPrefix("error: \(dir.path)/bad.jsonl:151: prompt: the model's tokenizer refused it"), "\(oov.stderr)")
        #expect(!FileManager.default.fileExists(atPath: run + "/metrics.jsonl"))

        lines[150] = #"{"prompt": "1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1=", "answer": "16"}"#
        try (lines.joined(separator: "\n") + "\n").write(toFile: dir.path + "/long.jsonl", atomically: true, encoding: .utf8)
        let long = try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "data.train=\(dir.path)/long.jsonl"])
        #expect(long.status == 1)
        #expect(long.stderr.hasPrefix("error: \(dir.path)/long.jsonl:151: prompt is 33 tokens, which leaves no room for an answer "
            + "within the model's 32 (at most 31 tokens, the begin token included)"), "\(long.stderr)")

        try Data().write(to: URL(fileURLWithPath: dir.path + "/empty.jsonl"))
        let empty = try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "data.train=\(dir.path)/empty.jsonl"])
        #expect(empty.stderr == "error: \(dir.path)/empty.jsonl: no problems (the file is empty) (data.train)\n")
    }

    // MARK: - Plugins that crash, hang or return NaN

    /// Finding 5: with isolation, a reward plugin that segfaults on its 3rd
    /// call costs only that batch: the run finishes, the metrics count the
    /// failure, the log names the signal.
    @Test func aSegfaultingRewardPluginCostsOneBatch() throws {
        let plugin = try misbehaving("SEGV_ON=3")
        let run = dir.path + "/segv"
        let result = try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "reward.plugin=\(plugin)",
                                                 "--set", "reward.isolation=process"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("step 3: 1 reward call(s) failed, their groups dropped: reward.plugin libsegv_on_3.so "
            + "(org.prism.tests.misbehaving): score: the runner died with signal 11 (SIGSEGV, a memory fault)"), "\(result.stderr)")
        #expect(!result.stderr.contains("Backtracing"))  // one line, not the runner's crash dump
        let errors = try metrics(run).map { $0["reward/errors"] as? Double ?? -1 }
        #expect(errors == [0, 0, 1, 0, 0, 1])  // each new runner crashes on its own 3rd call
    }

    /// The trainer sees the same interface in both modes: a run with the
    /// backend, the samplers, the reward and the judge each in a runner
    /// process ends with the very weights and metrics of the in-process run.
    @Test func isolationChangesNothingButWhereThePluginsRun() throws {
        let common = ["--set", "strategy.name=sgpo", "--set", "run.steps=3", "--set", "grpo.group_size=4",
                      "--set", "sft.steps=20", "--set", "sft.batch_size=16", "--set", "sft.lr=0.01"]
        let inProcess = dir.path + "/in-process"
        #expect(try TestSupport.run(prism, ["train", tiny, "--run", inProcess] + common).status == 0)
        let isolated = dir.path + "/isolated"
        let result = try TestSupport.run(prism, ["train", tiny, "--run", isolated] + common + [
            "--set", "model.isolation=process", "--set", "sampler.isolation=process",
            "--set", "reward.isolation=process", "--set", "judge.isolation=process"])
        #expect(result.status == 0, "\(result.stderr)")
        let a = try Data(contentsOf: URL(fileURLWithPath: inProcess + "/checkpoints/step-000003/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: isolated + "/checkpoints/step-000003/model.safetensors"))
        #expect(a == b)
        #expect(try metrics(inProcess).contains { ($0["updates"] as? Double ?? 0) > 0 })  // the weights did move
        let keys = ["reward", "loss", "grad_norm", "groups/diversified", "feedback/judged_tokens"]
        #expect(try metrics(inProcess).map { line in keys.map { "\(line[$0] ?? "-")" } }
            == metrics(isolated).map { line in keys.map { "\(line[$0] ?? "-")" } })
    }

    /// Quarantine: a plugin that crashes at every start is called
    /// `plugins.quarantine_after` times, then no more.
    @Test func aPluginThatAlwaysCrashesIsQuarantined() throws {
        let plugin = try misbehaving("SEGV_ON=1")
        let run = dir.path + "/quarantine"
        let result = try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "reward.plugin=\(plugin)",
                                                 "--set", "reward.isolation=process", "--set", "plugins.quarantine_after=2"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("step 3: 1 reward call(s) failed, their groups dropped: reward.plugin libsegv_on_1.so "
            + "(org.prism.tests.misbehaving): score: not called; quarantined after 2 failures in a row"), "\(result.stderr)")
        #expect(try metrics(run).allSatisfy { $0["groups/dropped"] as? Double == 2 })
    }

    /// A reward plugin that hangs on its 2nd call misses its deadline; the
    /// runner is killed and the run goes on.
    @Test func aHangingRewardPluginMissesItsDeadline() throws {
        let plugin = try misbehaving("HANG_ON=2")
        let run = dir.path + "/hang"
        let result = try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "reward.plugin=\(plugin)",
                                                 "--set", "reward.isolation=process", "--set", "reward.timeout_s=0.5",
                                                 "--set", "run.steps=3"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("score: no answer within 0.5 s (reward.timeout_s); the runner was killed"), "\(result.stderr)")
        #expect(try metrics(run).map { $0["reward/errors"] as? Double ?? -1 } == [0, 1, 0])
    }

    /// A judge that hangs leaves its group undiversified, counted.
    @Test func aHangingJudgeLeavesTheGroupUndiversified() throws {
        let plugin = try misbehaving("HANG_ON=2")
        let run = dir.path + "/judge"
        let result = try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "judge.plugin=\(plugin)",
                                                 "--set", "judge.isolation=process", "--set", "judge.timeout_s=0.5",
                                                 "--set", "strategy.name=sgpo", "--set", "run.steps=3"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("judge call(s) failed: judge.plugin libhang_on_2.so (org.prism.tests.misbehaving): "
            + "assess: no answer within 0.5 s (judge.timeout_s)"), "\(result.stderr)")
        let errors = try metrics(run).map { $0["feedback/errors"] as? Double ?? 0 }.reduce(0, +)
        #expect(errors >= 1)
    }

    /// A reward plugin that returns NaN: every group is not applicable,
    /// dropped and counted; the run finishes.
    @Test func aNaNRewardPluginIsCountedNotTrainedOn() throws {
        let plugin = try misbehaving("NAN_REWARD")
        let run = dir.path + "/nan"
        let result = try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "reward.plugin=\(plugin)",
                                                 "--set", "run.steps=2"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = try metrics(run)
        #expect(lines.count == 2)
        for line in lines {
            #expect(line["rewards/not_applicable"] as? Double == 4)
            #expect(line["groups/dropped"] as? Double == 2 && line["groups/total"] as? Double == 0)
            #expect(line["reward/errors"] as? Double == 0)
            #expect(line["updates"] == nil)
        }
    }

    /// A backend that dies stops the run at its last checkpoint, exit 3.
    @Test func aCrashingBackendStopsTheRunAtItsLastCheckpoint() throws {
        let plugin = try TestSupport.compilePlugin([TestSupport.fixture("fixture_sampler_backend.c")], name: "dying_backend",
                                                   defines: ["CRASH_ON_DECODE=20"], in: dir)
        var lines = ""
        for _ in 0..<20 { lines += #"{"prompt": "ab", "answer": "b"}"# + "\n" }
        try lines.write(toFile: dir.path + "/ab.jsonl", atomically: true, encoding: .utf8)
        let run = dir.path + "/backend"
        let result = try TestSupport.run(prism, [
            "train", "--run", run, "--set", "model.plugin=\(plugin)", "--set", "model.isolation=process",
            "--set", "data.train=\(dir.path)/ab.jsonl", "--set", "grpo.group_size=2", "--set", "grpo.prompts_per_step=1",
            "--set", "grpo.max_new_tokens=4", "--set", "run.steps=10", "--set", "run.checkpoint_every=2",
            "--set", "run.eval_every=0", "--set", "judge.plugin=", "--set", "sampler.plugin=\(plugin)"])
        #expect(result.status == 3, "\(result.stderr)")
        // 3 decode steps per GRPO step: the 20th is in step 7; step 6 has the last checkpoint.
        #expect(result.stderr.contains("error: step 7 failed: model.plugin libdying_backend.so"), "\(result.stderr)")
        #expect(result.stderr.contains("decode_step: the runner died with signal 6 (SIGABRT, an abort)"))
        #expect(result.stderr.hasSuffix("the run stopped (the last checkpoint is step 6; continue with: prism train --resume \(run))\n"))
        #expect(try checkpoints(run).last == "step-000006")
    }

    // MARK: - Signals

    /// Finding 5 and item 5: an in-process reward plugin hangs; one SIGTERM
    /// is acknowledged at once, the run exits 143 within the grace period
    /// and the last completed step has its checkpoint.
    @Test func oneSigtermAnswersAHangInProcess() throws {
        let plugin = try misbehaving("HANG_ON=2")
        let run = dir.path + "/term"
        let started = Date()
        let result = try TestSupport.runInterrupting(
            prism, ["train", tiny, "--run", run, "--set", "reward.plugin=\(plugin)", "--set", "run.checkpoint_every=0"],
            signal: SIGTERM) { $0.contains("misbehaving: hanging") }
        #expect(result.status == 143, "\(result.stderr)")
        #expect(Date().timeIntervalSince(started) < 30)
        #expect(result.stderr.contains("prism: SIGTERM received; stopping at the next safe point"))
        #expect(result.stderr.contains("saved the checkpoint of step 1, the last completed step; exiting"), "\(result.stderr)")
        #expect(try checkpoints(run) == ["step-000001"])
        let resumed = try TestSupport.run(prism, ["train", "--resume", run, "--set", "reward.plugin=PrismExactAnswer", "--set", "run.steps=2"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
    }

    /// With isolation, the same hang is cut at the next poll: the step
    /// stops cleanly on the main thread (exit 143, checkpoint of step 1).
    @Test func oneSigtermAnswersAHangInARunner() throws {
        let plugin = try misbehaving("HANG_ON=2")
        let run = dir.path + "/term-isolated"
        let result = try TestSupport.runInterrupting(
            prism, ["train", tiny, "--run", run, "--set", "reward.plugin=\(plugin)", "--set", "reward.isolation=process",
                    "--set", "run.checkpoint_every=0"], signal: SIGTERM) { $0.contains("misbehaving: hanging") }
        #expect(result.status == 143, "\(result.stderr)")
        #expect(result.stderr.contains("step 2: stopped at reward.score; the run ends at step 1"), "\(result.stderr)")
        #expect(result.stdout.contains("interrupted after step 1; continue with: prism train --resume \(run)"))
        #expect(try checkpoints(run) == ["step-000001"])
    }

    // MARK: - plugins list / check in a runner

    /// Finding 5 and 6: `plugins check` on a crashing plugin and `plugins
    /// list` on a library whose constructor aborts survive, and every line
    /// before the crash reaches a pipe.
    @Test func pluginsCheckAndListSurviveCrashingLibraries() throws {
        let crashing = try misbehaving("SEGV_ON=3")
        let check = try TestSupport.run(prism, ["plugins", "check", crashing, "--calls", "10"])
        #expect(check.status == 1)
        #expect(check.stdout.contains("PASS  load"), "\(check.stdout)")
        #expect(check.stdout.contains("FAIL  isolation  the plugin crashed its runner process (SIGSEGV) after the check"), "\(check.stdout)")
        let hanging = try misbehaving("HANG_ON=2")
        let hung = try TestSupport.run(prism, ["plugins", "check", hanging, "--calls", "10", "--timeout", "2"])
        #expect(hung.status == 1)
        #expect(hung.stdout.contains("FAIL  isolation  the plugin did not finish within 2 s (--timeout) and was killed"), "\(hung.stdout)")

        let folder = dir.appendingPathComponent("libs")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        _ = try TestSupport.compilePlugin([TestSupport.fixture("misbehaving.c")], name: "boom", defines: ["CRASH_ON_LOAD"], in: folder)
        _ = try TestSupport.compilePlugin([TestSupport.fixture("misbehaving.c")], name: "fine", defines: ["NAN_REWARD"], in: folder)
        let list = try TestSupport.run(prism, ["plugins", "list", folder.path])
        #expect(list.status == 0)
        #expect(list.stdout.contains("org.prism.tests.misbehaving\t1.0\tABI 1.0\t\(folder.path)/libfine.so"), "\(list.stdout)")
        #expect(list.stderr.contains("error: skipped \(folder.path)/libboom.so: crashed its runner process (SIGABRT)"), "\(list.stderr)")
    }

    // MARK: - Where plugins load from

    /// Finding 6: libraries others could have replaced are refused, with the
    /// reason and the override.
    @Test func unsafePluginLocationsAreRefused() throws {
        let plugin = try misbehaving("NAN_REWARD")
        let run = dir.path + "/unsafe"
        chmod(plugin, 0o777)
        let writable = try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "reward.plugin=\(plugin)"])
        #expect(writable.status == 1)
        #expect(writable.stderr == "error: \(plugin): refused: the file is world-writable (chmod o-w); fix the permissions "
            + "or ownership, or set PRISM_ALLOW_UNSAFE_PLUGINS=1 to load it anyway\n", "\(writable.stderr)")
        let allowed = try TestSupport.run(prism, ["train", tiny, "--run", run, "--set", "reward.plugin=\(plugin)",
                                                  "--set", "run.steps=1"], environment: ["PRISM_ALLOW_UNSAFE_PLUGINS": "1"])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        chmod(plugin, 0o755)

        let open = dir.appendingPathComponent("open")
        try FileManager.default.createDirectory(at: open, withIntermediateDirectories: true)
        chmod(open.path, 0o777)
        let inOpen = open.appendingPathComponent("libx.so").path
        try FileManager.default.copyItem(atPath: plugin, toPath: inOpen)
        let folder = try TestSupport.run(prism, ["plugins", "inspect", inOpen])
        #expect(folder.stderr.contains("refused: its folder \(open.path) is world-writable without the sticky bit"), "\(folder.stderr)")

        let relative = try TestSupport.run(prism, ["train", tiny, "--run", dir.path + "/rel", "--set", "reward.plugin=Mine"],
                                           environment: ["PRISM_PLUGIN_PATH": ".:/usr/lib"])
        #expect(relative.stderr.hasPrefix("error: PRISM_PLUGIN_PATH: refused: the entry '.' is not an absolute directory"), "\(relative.stderr)")

        if getuid() == 0 {  // only root can give a file to another user
            chown(plugin, 65534, 65534)
            let foreign = try TestSupport.run(prism, ["plugins", "inspect", plugin])
            #expect(foreign.stderr.contains("refused: the file belongs to user 65534, not to you (0) or root"), "\(foreign.stderr)")
        }
    }

    // MARK: - The smaller findings

    /// Finding 7: exit codes, a read-only run directory, `sft --out` to an
    /// unwritable place, invalid UTF-8 in a config.
    @Test func smallerFindings() throws {
        try Data([0x73, 0x65, 0x65, 0x64, 0x3a, 0x20, 0x31, 0x0a, 0x72, 0x75, 0x6e, 0x3a, 0x20, 0xff, 0xfe, 0x0a])
            .write(to: URL(fileURLWithPath: dir.path + "/latin1.yaml"))
        let utf8 = try TestSupport.run(prism, ["train", dir.path + "/latin1.yaml"])
        #expect(utf8.status == 1)
        #expect(utf8.stderr == "error: \(dir.path)/latin1.yaml:2: not valid UTF-8 (a config must be UTF-8 text)\n")

        let sft = try TestSupport.run(prism, ["sft", tiny, "--set", "sft.steps=2000", "--out", "/nonexistent/dir/model.safetensors"])
        #expect(sft.status == 1)
        #expect(sft.stderr == "error: /nonexistent/dir/model.safetensors: its folder /nonexistent/dir does not exist\n")

        // A run directory that cannot be created: one line with the reason, no Foundation dump.
        let blocked = try TestSupport.run(prism, ["train", tiny, "--run", tiny + "/run"])
        #expect(blocked.status == 1)
        #expect(blocked.stderr == "error: \(tiny)/run: cannot create the run directory (\(tiny) is not a directory)\n", "\(blocked.stderr)")

        if getuid() != 0 {  // root writes anywhere
            let locked = dir.appendingPathComponent("readonly")
            try FileManager.default.createDirectory(at: locked, withIntermediateDirectories: true)
            chmod(locked.path, 0o555)
            let readOnly = try TestSupport.run(prism, ["train", tiny, "--run", locked.path + "/run"])
            #expect(readOnly.status == 1)
            #expect(!readOnly.stderr.contains("NSCocoaErrorDomain"), "\(readOnly.stderr)")
            #expect(readOnly.stderr.hasPrefix("error: \(locked.path)/run: cannot create the run directory"), "\(readOnly.stderr)")
        }
    }
}
