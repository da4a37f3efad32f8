import Foundation
import PrismCore

/// A training run: SFT warm-start (optional), then online GRPO with the
/// configured strategy, writing everything to a run directory.
public final class Trainer {
    public let config: ConfigFile
    public let directory: RunDirectory
    public let components: Components
    /// Asked between steps; true stops the run after a checkpoint (Ctrl-C, SIGTERM).
    public var shouldStop: () -> Bool = { false }
    /// Progress and log lines.
    public var progress: ProgressReporter

    public init(config: ConfigFile, directory: RunDirectory, components: Components, progress: ProgressReporter) {
        self.config = config
        self.directory = directory
        self.components = components
        self.progress = progress
    }

    /// What a run ended with.
    public struct Summary: Sendable {
        public var firstStep: Int
        public var lastStep: Int
        public var interrupted: Bool
        public var evaluation: Evaluation?
    }

    /// How a run begins when its directory already holds one.
    public struct Start: Sendable, Equatable {
        /// Continue from the newest valid checkpoint.
        public var resume = false
        /// Without `resume`: move an existing run aside (never deleted) and start anew.
        public var overwrite = false
        /// With `resume`: accept changes to the keys that define the run
        /// (``definingKeyPrefixes``); they are recorded in `changes.jsonl`.
        public var force = false

        public init(resume: Bool = false, overwrite: Bool = false, force: Bool = false) {
            self.resume = resume
            self.overwrite = overwrite
            self.force = force
        }
    }

    /// Keys whose change on `--resume` would make `config.yaml` describe
    /// another run than the one on disk.
    public static let definingKeyPrefixes = ["seed", "model.", "data.", "strategy."]

    let guardian = RunGuard()

    /// From another thread, after a stop was asked and no safe point came
    /// within a grace period: when the run made no backend call in that
    /// period (it is stuck in another plugin's call), writes the last
    /// completed step's checkpoint if the weights are still that step's.
    /// - Returns: one line saying what was saved, or nil while the run is
    ///   still making progress or ending in order (wait for it).
    public func emergencyCheckpoint() -> String? {
        guardian.emergencyCheckpoint(directory: directory, backend: components.backend)
    }

    /// Runs (or, with `resume`, continues) the training.
    public func run(resume: Bool) throws -> Summary {
        try run(Start(resume: resume))
    }

    /// Runs or continues the training, holding the run directory's lock.
    /// - Throws: ``TrainerError`` when the directory holds another run (and
    ///   neither `resume` nor `overwrite` was asked), is in use, when the
    ///   data fail their checks, or when a resume would change a defining key.
    public func run(_ start: Start) throws -> Summary {
        let session: TrainingSession
        do {
            session = try TrainingSession(trainer: self, start: start)
        } catch let stop as Cancelled {
            progress.log("stopped at \(stop.call), before step 1; nothing to resume")
            return Summary(firstStep: 1, lastStep: 0, interrupted: true, evaluation: nil)
        }
        var interrupted = false
        loop: while true {
            let outcome: TrainingSession.Outcome
            do {
                outcome = try session.step()
            } catch {
                session.abandon()
                throw error
            }
            switch outcome {
            case .finished: break loop
            case .stopped:
                interrupted = true
                break loop
            case .completed(_, _, let stopAsked):
                if session.isFinished { break loop }
                if stopAsked {
                    interrupted = true
                    break loop
                }
            }
        }
        return try session.finish(interrupted: interrupted)
    }

    /// A fresh run's model: `model.checkpoint`, the warm start, the
    /// reference snapshot, and the step-0 evaluation when asked.
    /// - Throws: ``Cancelled`` when stopped (nothing is saved).
    func prepare(backend: any ComputeBackend, policy: Policy, greedy: Policy, train: [Example], held: [Example]) throws {
        let c = config
        if !c.string("model.checkpoint").isEmpty { try backend.load(from: c.string("model.checkpoint")) }
        try warmStart(policy: policy, train: train)
        try backend.snapshotReference()
        guard c.bool("run.eval_at_start"), !held.isEmpty else { return }
        do {
            let result = try evaluate(greedy: greedy, sampled: policy, held: held, seed: 0)
            var line = StepMetrics()
            line.set(.budgetSpent, 0)
            line.record(result)
            try directory.append(line.jsonLine(step: 0), to: directory.metricsPath)
            progress.log(String(format: "step 0: held-out accuracy %.3f ± %.3f", result.accuracy, result.accuracyStandardError))
        } catch let stop as Cancelled {
            throw stop
        } catch {
            progress.log("step 0: evaluation failed, training goes on: \(error)")
        }
    }

    /// Takes the run directory's lock. A fresh run into a directory that
    /// holds one is refused (naming `alternative`), or with `overwrite` the
    /// old run is moved aside (never deleted) and the new one started.
    func claimDirectory(fresh: Bool, overwrite: Bool, alternative: String) throws -> RunDirectory.Lock {
        let lock = try directory.lock()
        guard fresh && directory.holdsRun else { return lock }
        guard overwrite else {
            throw TrainerError("\(directory.path): holds a run already; \(alternative) (the old run is moved aside, not deleted)")
        }
        let aside = try directory.moveAside()
        progress.log("moved the previous run to \(aside)")
        return try directory.lock()
    }

    /// Writes the resolved config (with this invocation's --set overrides).
    func writeConfig() throws {
        do {
            try Data(config.yaml.utf8).write(to: URL(fileURLWithPath: directory.configPath), options: .atomic)
        } catch {
            throw TrainerError("\(directory.configPath): cannot write (\(reason(error)))")
        }
    }

    /// On resume: the keys this invocation changes against the run's
    /// `config.yaml`, refused for defining keys unless `force`, recorded in
    /// `changes.jsonl` either way.
    func recordChanges(at step: Int, force: Bool) throws {
        guard let previous = try? ConfigFile(path: directory.configPath) else { return }
        let changed = ConfigKey.all.map(\.path).filter { path in
            ConfigKey.named(path)?.kind == .pluginConfig
                ? previous.pluginConfig(path) != config.pluginConfig(path) : previous.value(path) != config.value(path)
        }
        guard !changed.isEmpty else { return }
        func value(_ file: ConfigFile, _ path: String) -> String {
            ConfigKey.named(path)?.kind == .pluginConfig ? file.pluginConfig(path) : file.value(path)
        }
        let defining = changed.filter { path in
            !path.hasSuffix(".isolation") && !path.hasSuffix(".timeout_s")
                && Self.definingKeyPrefixes.contains { path == $0 || path.hasPrefix($0) }
        }
        if !defining.isEmpty && !force {
            let list = defining.map { "\($0) (\(value(previous, $0)) -> \(value(config, $0)))" }.joined(separator: ", ")
            throw TrainerError("\(directory.path): --resume would change \(list), which define the run; "
                + "pass --force to resume anyway (the change is recorded in changes.jsonl), or train into a new --run")
        }
        var entry: [String: Any] = ["step": step, "time": ISO8601DateFormatter().string(from: Date())]
        entry["changed"] = Dictionary(uniqueKeysWithValues: changed.map { ($0, ["from": value(previous, $0), "to": value(config, $0)]) })
        let data = try JSONSerialization.data(withJSONObject: entry, options: [.sortedKeys, .withoutEscapingSlashes])
        try directory.append(String(decoding: data, as: UTF8.self), to: directory.path + "/changes.jsonl")
        progress.log("resume changes \(changed.joined(separator: ", ")) (recorded in \(directory.path)/changes.jsonl)")
    }

    /// Offline GRPO: trains on the groups of a JSONL file (from `prism
    /// rollout` or any tool), `grpo.prompts_per_step` groups per step, for at
    /// most `run.steps` steps, from `model.checkpoint`.
    public func runOffline(file: String, overwrite: Bool = false) throws {
        let groups = try JSONL.read(OfflineGroup.self, from: file)
        guard !groups.isEmpty else { throw TrainerError("\(file): no groups (the file is empty)") }
        let lock = try claimDirectory(fresh: true, overwrite: overwrite,
                                      alternative: "start again with --overwrite, or choose another --run")
        defer { withExtendedLifetime(lock) {} }
        try writeConfig()
        try? FileManager.default.removeItem(atPath: directory.metricsPath)
        try? FileManager.default.removeItem(atPath: directory.samplesPath)
        let policy = try Policy(backend: components.backend, sampler: components.sampler,
                                temperature: Float(config.double("grpo.temperature")))
        if !config.string("model.checkpoint").isEmpty { try components.backend.load(from: config.string("model.checkpoint")) }
        try components.backend.snapshotReference()
        let step = GRPOStep(policy: policy, reward: components.reward, judge: components.judge,
                            settings: try config.grpoSettings(strategy: components.strategy))
        let perStep = config.int("grpo.prompts_per_step")
        let steps = min(config.int("run.steps"), (groups.count + perStep - 1) / perStep)
        progress.start(total: steps, from: 0)
        for n in 1...max(steps, 1) {
            let chunk = Array(groups[((n - 1) * perStep)..<min(n * perStep, groups.count)])
            let (metrics, samples) = try step.run(step: n, offline: chunk)
            try directory.append(metrics.jsonLine(step: n), to: directory.metricsPath)
            for sample in samples {
                try directory.append(String(decoding: try JSONEncoder.sorted.encode(sample), as: UTF8.self),
                                     to: directory.samplesPath)
            }
            progress.step(n, metrics: metrics)
        }
        progress.finish()
        try directory.saveCheckpoint(RunDirectory.State(step: steps, rng: words(RandomState(seed: 1)), dataCursor: 0),
                                     backend: components.backend)
        try Report.write(runs: [directory], to: directory.reportPath)
    }

    /// Supervised warm-start on the training problems' worked solutions.
    func warmStart(policy: Policy, train: [Example]) throws {
        try SupervisedStep.warmStart(train, policy: policy, config: config, seed: UInt64(config.int("seed")) &+ 17,
                                     log: progress.log, shouldStop: shouldStop)
    }

    func evaluate(greedy: Policy, sampled: Policy, held: [Example], seed: UInt64) throws -> Evaluation {
        try Evaluation.run(
            examples: held, greedy: greedy, sampled: config.int("eval.k") > 0 ? sampled : nil, k: config.int("eval.k"),
            reward: components.reward, judge: components.evaluationJudge, maxNewTokens: config.int("eval.max_new_tokens"),
            seed: seed)
    }

}

func words(_ rng: RandomState) -> [UInt64] { [rng.words.0, rng.words.1, rng.words.2, rng.words.3] }
