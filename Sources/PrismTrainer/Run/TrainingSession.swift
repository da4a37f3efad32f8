import Foundation
import PrismCore

/// An open run, taken one step at a time: what ``Trainer/run(_:)`` does in
/// a loop, for callers that drive the loop themselves (the embedding API).
///
/// Opening one claims the run directory's lock and starts from a checkpoint
/// or prepares a fresh model; each ``step()`` trains, evaluates when due,
/// appends the metrics and saves checkpoints as the config says;
/// ``finish(interrupted:)`` writes the report and lets the directory go.
/// A step stopped by ``Trainer/shouldStop`` leaves the session at the last
/// completed step (weights, random state and data position), so the next
/// ``step()`` continues exactly as `--resume` would.
///
/// Not thread-safe: one thread at a time. ``Trainer/shouldStop`` is asked
/// from the stepping thread.
public final class TrainingSession {
    public let trainer: Trainer
    /// The last completed step (0 before the first).
    public private(set) var lastStep: Int
    /// The step this session began at.
    public let firstStep: Int
    /// The newest evaluation (at a due step or from ``evaluate()``).
    public private(set) var evaluation: Evaluation?

    private var lock: RunDirectory.Lock?
    private let backend: GuardedBackend
    private let policy: Policy
    private let greedy: Policy
    private let grpo: GRPOStep
    private let train: [Example]
    private let held: [Example]
    private let retention: RunDirectory.Retention
    private var state: RunDirectory.State
    private var rng: RandomState
    private var cursor: Int
    private var spent: Double
    /// Whether `state` has its checkpoint on disk.
    private var saved = true
    private var finished = false
    /// The step that failed, after which no step is taken.
    private var failedStep: Int?

    /// What one ``step()`` did.
    public enum Outcome: Sendable, Equatable {
        /// Step `step` completed; its metrics line (as appended to
        /// metrics.jsonl); whether a stop was asked by its end (its
        /// checkpoint is then saved).
        case completed(step: Int, metrics: String, stopAsked: Bool)
        /// A stop was asked during the step: nothing of it is kept, the
        /// last completed step's checkpoint is on disk.
        case stopped
        /// The run had already ended (`run.steps` done or the token budget spent).
        case finished
    }

    /// Opens the run in `trainer.directory`.
    /// - Throws: what ``Trainer/run(_:)`` throws before its first step, and
    ///   ``Cancelled`` when a stop is asked while a fresh model is prepared.
    public init(trainer: Trainer, start: Trainer.Start) throws {
        self.trainer = trainer
        let c = trainer.config, directory = trainer.directory, progress = trainer.progress
        let lock = try trainer.claimDirectory(
            fresh: !start.resume, overwrite: start.overwrite,
            alternative: "continue it with --resume \(directory.path), or start again with --overwrite")
        backend = GuardedBackend(trainer.components.backend, guardian: trainer.guardian)
        policy = try Policy(backend: backend, sampler: trainer.components.sampler,
                            temperature: Float(c.double("grpo.temperature")))
        greedy = try Policy(backend: backend, sampler: trainer.components.greedySampler, temperature: 1)
        policy.shouldStop = { trainer.shouldStop() }
        greedy.shouldStop = { trainer.shouldStop() }
        train = try DataCheck(policy: policy, config: c).load("data.train", solutions: c.int("sft.steps") > 0)
        held = Array(try DataCheck(policy: policy, config: c).load("data.eval").prefix(c.int("data.eval_problems")))
        grpo = GRPOStep(policy: policy, reward: trainer.components.reward, judge: trainer.components.judge,
                        settings: try c.grpoSettings(strategy: trainer.components.strategy))
        retention = RunDirectory.Retention(last: c.int("run.keep_checkpoints"), every: c.int("run.keep_checkpoint_every"))

        // Where to start: a checkpoint of this run, or a fresh (warm-started) model.
        var state = RunDirectory.State(step: 0, rng: words(RandomState(seed: UInt64(c.int("seed")))), dataCursor: 0,
                                       spentTokens: 0)
        var found: RunDirectory.Checkpoint?
        if start.resume {
            found = try directory.newestCheckpoint(warn: progress.log)
            if found == nil && FileManager.default.fileExists(atPath: directory.metricsPath) {
                progress.log("\(directory.path) has no checkpoint yet; starting again from step 0")
            }
        }
        if let found {
            try trainer.recordChanges(at: found.state.step, force: start.force)
            try backend.load(from: found.modelPath)
            state = found.state
            try directory.truncate(after: state.step)
            try trainer.writeConfig()
            progress.log("resuming \(directory.path) from step \(state.step)")
        } else {
            if start.resume && !FileManager.default.fileExists(atPath: directory.metricsPath) {
                progress.log("no checkpoint in \(directory.path); starting from step 0")
            }
            try trainer.writeConfig()
            try? FileManager.default.removeItem(atPath: directory.metricsPath)
            try? FileManager.default.removeItem(atPath: directory.samplesPath)
            try trainer.prepare(backend: backend, policy: policy, greedy: greedy, train: train, held: held)
        }
        self.lock = lock
        self.state = state
        rng = RandomState(words: (state.rng[0], state.rng[1], state.rng[2], state.rng[3]))
        cursor = state.dataCursor
        spent = state.spentTokens ?? 0
        lastStep = state.step
        firstStep = state.step + 1
        progress.start(total: c.int("run.steps"), from: state.step, budget: budget, spent: spent)
    }

    private var budget: Double { Double(trainer.config.int("run.token_budget")) }
    private var steps: Int { trainer.config.int("run.steps") }

    /// Whether the run has ended: `run.steps` done or the token budget spent.
    public var isFinished: Bool { lastStep >= steps || (budget > 0 && spent >= budget) }

    /// Takes the next step.
    /// - Throws: ``RunFailure`` when the step fails (a plugin's error); the
    ///   run's last checkpoint is then the newest on disk. Errors writing
    ///   the run directory as they are.
    public func step() throws -> Outcome {
        guard !finished else { throw TrainerError("\(trainer.directory.path): the session has finished") }
        if let failedStep {
            throw TrainerError("\(trainer.directory.path): step \(failedStep) failed; no further step is taken in this session "
                + "(continue from the last checkpoint with --resume)")
        }
        guard !isFinished else { return .finished }
        let c = trainer.config, directory = trainer.directory, progress = trainer.progress
        let n = state.step + 1
        trainer.guardian.begin(after: state, saved: saved, retention: retention)
        let metrics: StepMetrics, samples: [SampleRecord]
        do {
            (metrics, samples) = try grpo.run(step: n, next: {
                defer { cursor += 1 }
                return train[cursor % train.count]
            }, rng: &rng)
        } catch let stop as Cancelled {
            // Mid-step: the weights are still the last completed step's; so
            // are the random state and the data position from here on.
            trainer.guardian.markStopping()
            progress.log("step \(n): stopped at \(stop.call); the run ends at step \(state.step)")
            if !saved && state.step > 0 {
                try directory.saveCheckpoint(state, backend: backend, retention: retention)
                saved = true
            }
            rng = RandomState(words: (state.rng[0], state.rng[1], state.rng[2], state.rng[3]))
            cursor = state.dataCursor
            spent = state.spentTokens ?? 0
            return .stopped
        } catch {
            failedStep = n
            throw RunFailure(step: n, lastCheckpoint: saved ? state.step : directory.checkpointSteps().last,
                             directory: directory, error: error)
        }
        var line = metrics
        spent += (metrics[.tokensGenerated] ?? 0) + c.double("run.judge_token_cost") * (metrics[.feedbackJudgedTokens] ?? 0)
        line.set(.budgetSpent, spent)
        let last = n == steps || (budget > 0 && spent >= budget)
        let every = c.int("run.eval_every")
        if !held.isEmpty, (every > 0 && n % every == 0) || last {
            do {
                let result = try trainer.evaluate(greedy: greedy, sampled: policy, held: held, seed: UInt64(n))
                evaluation = result
                line.record(result)
            } catch is Cancelled {
                progress.log("step \(n): evaluation stopped; the step is kept without it")
            } catch {
                progress.log("step \(n): evaluation failed, training goes on: \(error)")
            }
        }
        let json = line.jsonLine(step: n)
        try directory.append(json, to: directory.metricsPath)
        for sample in samples {
            try directory.append(String(decoding: try JSONEncoder.sorted.encode(sample), as: UTF8.self),
                                 to: directory.samplesPath)
        }
        if let message = grpo.lastJudgeError, metrics[.feedbackErrors] ?? 0 > 0 {
            progress.log("step \(n): \(Int(metrics[.feedbackErrors]!)) judge call(s) failed: \(message)")
        }
        if let message = grpo.lastRewardError, metrics[.rewardErrors] ?? 0 > 0 {
            progress.log("step \(n): \(Int(metrics[.rewardErrors]!)) reward call(s) failed, their groups dropped: \(message)")
        }
        if let message = grpo.lastStrategyError, metrics[.strategyErrors] ?? 0 > 0 {
            progress.log("step \(n): \(Int(metrics[.strategyErrors]!)) strategy call(s) failed: \(message)")
        }
        progress.step(n, metrics: line)
        state = RunDirectory.State(step: n, rng: words(rng), dataCursor: cursor, spentTokens: spent)
        lastStep = n
        saved = false
        let checkpointEvery = c.int("run.checkpoint_every")
        let stop = trainer.shouldStop()
        if stop || last { trainer.guardian.markStopping() }
        if last || stop || (checkpointEvery > 0 && n % checkpointEvery == 0) {
            try directory.saveCheckpoint(state, backend: backend, retention: retention)
            saved = true
        }
        if last && n < steps {
            progress.log(String(format: "token budget spent (%.0f of %.0f) after step %d", spent, budget, n))
        }
        return .completed(step: n, metrics: json, stopAsked: stop)
    }

    /// Saves the last completed step's checkpoint now (nothing when it is
    /// on disk already, or before the first step).
    /// - Throws: ``TrainerError`` after a failed step (the weights may be
    ///   part-way through it; the checkpoints on disk are the run's).
    public func checkpoint() throws {
        if let failedStep {
            throw TrainerError("\(trainer.directory.path): step \(failedStep) failed; its weights are not saved "
                + "(continue from the last checkpoint with --resume)")
        }
        guard !saved, state.step > 0 else { return }
        try trainer.directory.saveCheckpoint(state, backend: backend, retention: retention)
        saved = true
    }

    /// Evaluates the current weights on the held-out problems (`data.eval`),
    /// as a due step does; nothing is written to the run directory.
    /// - Throws: ``TrainerError`` without held-out problems; ``Cancelled``
    ///   when a stop is asked; the plugins' errors.
    public func evaluate() throws -> Evaluation {
        guard !held.isEmpty else { throw TrainerError("data.eval: no held-out problems to evaluate on (set data.eval)") }
        let result = try trainer.evaluate(greedy: greedy, sampled: policy, held: held, seed: UInt64(state.step))
        evaluation = result
        return result
    }

    /// Lets the run directory go after a failure, writing nothing.
    public func abandon() {
        guard !finished else { return }
        finished = true
        trainer.progress.finish()
        trainer.guardian.end()
        lock = nil
    }

    /// Ends the session: saves the last step's checkpoint when it is not on
    /// disk (not after a failed step), writes the report and releases the
    /// directory's lock. Further
    /// calls do nothing and return the same summary.
    @discardableResult
    public func finish(interrupted: Bool) throws -> Trainer.Summary {
        if !finished {
            finished = true
            defer {
                trainer.guardian.end()
                lock = nil
            }
            trainer.progress.finish()
            if failedStep == nil { try checkpoint() }
            try Report.write(runs: [trainer.directory], to: trainer.directory.reportPath)
        }
        return Trainer.Summary(firstStep: firstStep, lastStep: lastStep, interrupted: interrupted, evaluation: evaluation)
    }
}
