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

    /// Runs (or, with `resume`, continues) the training.
    public func run(resume: Bool) throws -> Summary {
        let c = config
        try directory.create()
        let train = try loadData("data.train")
        let held = try loadData("data.eval").prefix(c.int("data.eval_problems"))
        guard !train.isEmpty else { throw TrainerError("data.train: no training problems (set data.train to a JSONL file)") }
        let temperature = Float(c.double("grpo.temperature"))
        let policy = try Policy(backend: components.backend, sampler: components.sampler, temperature: temperature)
        let greedy = try Policy(backend: components.backend, sampler: components.greedySampler, temperature: 1)
        let step = GRPOStep(policy: policy, reward: components.reward, judge: components.judge,
                            settings: try c.grpoSettings(strategy: components.strategy))

        // 1. Where to start: a checkpoint of this run, or a fresh (warm-started) model.
        var state = RunDirectory.State(step: 0, rng: words(RandomState(seed: UInt64(c.int("seed")))), dataCursor: 0,
                                       spentTokens: 0)
        if resume, let (saved, model) = try directory.latestCheckpoint() {
            try components.backend.load(from: model)
            state = saved
            try directory.truncate(after: state.step)
            // The resolved config now includes this invocation's --set overrides.
            try Data(c.yaml.utf8).write(to: URL(fileURLWithPath: directory.configPath), options: .atomic)
            progress.log("resuming \(directory.path) from step \(state.step)")
        } else {
            if resume { progress.log("no checkpoint in \(directory.path); starting from step 0") }
            try Data(c.yaml.utf8).write(to: URL(fileURLWithPath: directory.configPath), options: .atomic)
            try? FileManager.default.removeItem(atPath: directory.metricsPath)
            try? FileManager.default.removeItem(atPath: directory.samplesPath)
            if !c.string("model.checkpoint").isEmpty { try components.backend.load(from: c.string("model.checkpoint")) }
            try warmStart(policy: policy, train: train)
            try components.backend.snapshotReference()
            if c.bool("run.eval_at_start"), !held.isEmpty {
                do {
                    let result = try evaluate(greedy: greedy, sampled: policy, held: Array(held), seed: 0)
                    var line = StepMetrics()
                    line.set(.budgetSpent, 0)
                    line.record(result)
                    try directory.append(line.jsonLine(step: 0), to: directory.metricsPath)
                    progress.log(String(format: "step 0: held-out accuracy %.3f ± %.3f", result.accuracy, result.accuracyStandardError))
                } catch {
                    progress.log("step 0: evaluation failed, training goes on: \(error)")
                }
            }
        }

        // 2. The GRPO loop.
        var rng = RandomState(words: (state.rng[0], state.rng[1], state.rng[2], state.rng[3]))
        var cursor = state.dataCursor
        var spent = state.spentTokens ?? 0
        let budget = Double(c.int("run.token_budget"))
        let judgeCost = c.double("run.judge_token_cost")
        let steps = c.int("run.steps")
        let first = state.step + 1
        var interrupted = false
        var evaluation: Evaluation?
        progress.start(total: steps, from: state.step, budget: budget, spent: spent)
        if first <= steps, budget == 0 || spent < budget {
            for n in first...steps {
                let (metrics, samples) = try step.run(step: n, next: {
                    defer { cursor += 1 }
                    return train[cursor % train.count]
                }, rng: &rng)
                var line = metrics
                spent += (metrics[.tokensGenerated] ?? 0) + judgeCost * (metrics[.feedbackJudgedTokens] ?? 0)
                line.set(.budgetSpent, spent)
                let last = n == steps || (budget > 0 && spent >= budget)
                let every = c.int("run.eval_every")
                if !held.isEmpty, (every > 0 && n % every == 0) || last {
                    do {
                        let result = try evaluate(greedy: greedy, sampled: policy, held: Array(held), seed: UInt64(n))
                        evaluation = result
                        line.record(result)
                    } catch {
                        progress.log("step \(n): evaluation failed, training goes on: \(error)")
                    }
                }
                try directory.append(line.jsonLine(step: n), to: directory.metricsPath)
                for sample in samples {
                    try directory.append(String(decoding: try JSONEncoder.sorted.encode(sample), as: UTF8.self),
                                         to: directory.samplesPath)
                }
                if let message = step.lastJudgeError, metrics[.feedbackErrors] ?? 0 > 0 {
                    progress.log("step \(n): \(Int(metrics[.feedbackErrors]!)) judge call(s) failed: \(message)")
                }
                if let message = step.lastRewardError, metrics[.rewardErrors] ?? 0 > 0 {
                    progress.log("step \(n): \(Int(metrics[.rewardErrors]!)) reward call(s) failed, their groups dropped: \(message)")
                }
                if let message = step.lastStrategyError, metrics[.strategyErrors] ?? 0 > 0 {
                    progress.log("step \(n): \(Int(metrics[.strategyErrors]!)) strategy call(s) failed: \(message)")
                }
                progress.step(n, metrics: line)
                state = RunDirectory.State(step: n, rng: words(rng), dataCursor: cursor, spentTokens: spent)
                let checkpointEvery = c.int("run.checkpoint_every")
                let stop = shouldStop()
                if last || stop || (checkpointEvery > 0 && n % checkpointEvery == 0) {
                    try directory.saveCheckpoint(state, backend: components.backend)
                }
                if stop && !last {
                    interrupted = true
                    break
                }
                if last {
                    if n < steps { progress.log(String(format: "token budget spent (%.0f of %.0f) after step %d", spent, budget, n)) }
                    break
                }
            }
        }
        progress.finish()
        try Report.write(runs: [directory], to: directory.reportPath)
        return Summary(firstStep: first, lastStep: state.step, interrupted: interrupted, evaluation: evaluation)
    }

    /// Offline GRPO: trains on the groups of a JSONL file (from `prism
    /// rollout` or any tool), `grpo.prompts_per_step` groups per step, for at
    /// most `run.steps` steps, from `model.checkpoint`.
    public func runOffline(file: String) throws {
        let groups = try JSONL.read(OfflineGroup.self, from: file)
        guard !groups.isEmpty else { throw TrainerError("\(file): no groups") }
        try directory.create()
        try Data(config.yaml.utf8).write(to: URL(fileURLWithPath: directory.configPath), options: .atomic)
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

    func loadData(_ key: String) throws -> [Example] {
        let path = config.string(key)
        return path.isEmpty ? [] : try JSONL.read(Example.self, from: path)
    }
}

func words(_ rng: RandomState) -> [UInt64] { [rng.words.0, rng.words.1, rng.words.2, rng.words.3] }
