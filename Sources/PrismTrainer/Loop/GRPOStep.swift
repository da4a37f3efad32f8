import PrismCore

/// What a GRPO step needs besides the policy.
public struct GRPOSettings {
    /// Completions per prompt (G).
    public var groupSize = 8
    /// Prompts per step (before any resampling).
    public var promptsPerStep = 16
    public var maxNewTokens = 48
    /// What to do with the groups: which to judge, keep, and their advantages.
    public var strategy: any GroupStrategy = Strategy()
    /// Resampling rounds after the first generation before going on with
    /// what there is.
    public var maxResampleRounds = 3
    public var loss = PolicyLoss()
    public var optimizer = OptimizerStep(learningRate: 2e-4)
    /// Passes over each batch (μ); the log-probs of the first pass are the
    /// "old" ones of the clipped ratio.
    public var updatesPerBatch = 1
    /// Optimizer steps per pass: the batch's rows split into this many parts.
    public var minibatches = 1
    /// Completions a step returns for `samples.jsonl`.
    public var logSamples = 4

    public init() {}
}

/// One offline group: a prompt and completions generated elsewhere (by
/// `prism rollout` or any tool), with their rewards when known.
public struct OfflineGroup: Codable, Sendable, Equatable {
    public var example: Example
    public var completions: [String]
    /// Per completion; null = not applicable. Absent: the reward plugin scores them.
    public var rewards: [Double?]?
    public var correct: [Bool]?

    public init(example: Example, completions: [String], rewards: [Double?]?, correct: [Bool]?) {
        self.example = example
        self.completions = completions
        self.rewards = rewards
        self.correct = correct
    }
}

/// One completion as logged to `samples.jsonl`.
public struct SampleRecord: Codable, Sendable, Equatable {
    public var step: Int
    public var prompt: String
    public var completion: String
    public var answer: String
    public var reward: Double?
    public var correct: Bool
    public var advantage: Double
    public var judgeScore: Double?
}

/// One GRPO step, in two halves that online training, offline training and
/// `prism simulate` share:
/// - *collect* (`Collect.swift`): generate or read the groups, score them,
///   ask the judge about the groups the strategy wants judged, and keep,
///   drop or resample each as the strategy and the judge say;
/// - *learn* (`Learn.swift`): the strategy's advantages, the clipped
///   objective over μ passes and the minibatches, the backend's updates.
public final class GRPOStep {
    public let policy: Policy
    public let reward: any RewardFunction
    public let judge: (any FeedbackGenerator)?
    public var settings: GRPOSettings
    /// The last judge failure, for the log (the step goes on without it).
    public internal(set) var lastJudgeError: String?
    /// The last reward failure (its batch then counts as not applicable).
    public internal(set) var lastRewardError: String?
    /// The last strategy plugin failure (its group went unjudged or was
    /// dropped, or the step made no update).
    public internal(set) var lastStrategyError: String?

    public init(policy: Policy, reward: any RewardFunction, judge: (any FeedbackGenerator)?, settings: GRPOSettings) {
        self.policy = policy
        self.reward = reward
        self.judge = judge
        self.settings = settings
    }

    /// Online: prompts drawn from `next`, a group generated for each, groups
    /// the strategy or the judge want resampled replaced by fresh prompts.
    /// - Returns: the step's metrics and a few samples for the log.
    public func run(step: Int, next: () -> Example, rng: inout RandomState) throws -> (StepMetrics, [SampleRecord]) {
        var collected = CollectedStep()
        var pending = (0..<settings.promptsPerStep).map { _ in next() }
        for round in 0... {
            guard !pending.isEmpty else { break }
            let clock = ContinuousClock()
            let started = clock.now
            // One pass in several minibatches: the old log-probs come from generation.
            let generated = try policy.generate(
                pending.map(\.prompt), count: settings.groupSize, maxNewTokens: settings.maxNewTokens,
                recordLogprobs: settings.updatesPerBatch == 1 && settings.minibatches > 1, rng: &rng)
            collected.generationTime += clock.now - started
            collected.generatedTokens += generated.joined().map(\.tokens.count).reduce(0, +)
            let resample = try collect(pending, generated, known: nil, round: round, into: &collected)
            pending = (0..<resample).map { _ in next() }
        }
        return try learn(step: step, collected)
    }

    /// Offline: pre-generated groups, scored where they have no rewards yet.
    /// No resampling is possible: groups that ask for it are dropped.
    public func run(step: Int, offline records: [OfflineGroup]) throws -> (StepMetrics, [SampleRecord]) {
        let eos = policy.info.eosToken.map { [Int32($0)] } ?? []
        var generated: [[Completion]] = []
        for record in records {
            let prompt = try policy.promptTokens(record.example.prompt)
            generated.append(try record.completions.map { text in
                Completion(promptTokens: prompt, tokens: (try policy.backend.tokenize(text)) + eos, text: text, finished: true)
            })
        }
        let known: [[RewardScore]?] = records.map { record in
            guard let rewards = record.rewards, let correct = record.correct, rewards.count == record.completions.count,
                  correct.count == rewards.count else { return nil }
            return zip(rewards, correct).map { RewardScore(reward: $0 ?? .nan, correct: $1) }
        }
        var collected = CollectedStep()
        _ = try collect(records.map(\.example), generated, known: known, round: settings.maxResampleRounds,
                        into: &collected)
        return try learn(step: step, collected)
    }
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}
