import PrismCore

/// What a GRPO step needs besides the policy.
public struct GRPOSettings: Sendable {
    /// Completions per prompt (G).
    public var groupSize = 8
    /// Prompts per step (before any resampling).
    public var promptsPerStep = 16
    public var maxNewTokens = 48
    public var strategy = Strategy()
    public var loss = PolicyLoss()
    public var optimizer = OptimizerStep(learningRate: 2e-4)

    public init() {}
}

/// One completion as logged to `samples.jsonl`.
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

/// One step of online GRPO: take prompts, generate a group per prompt, score,
/// ask the judge about the groups the strategy diversifies, resample what the
/// filter replaces, compute advantages and the token gradient, update.
public final class GRPOStep {
    public let policy: Policy
    public let reward: any RewardFunction
    public let judge: (any FeedbackGenerator)?
    public var settings: GRPOSettings
    /// The last judge failure, for the log (the step goes on without it).
    public private(set) var lastJudgeError: String?
    /// The last reward failure (its batch then counts as not applicable).
    public private(set) var lastRewardError: String?
    /// Reward calls that failed during the current step.
    private var rewardErrors = 0

    public init(policy: Policy, reward: any RewardFunction, judge: (any FeedbackGenerator)?, settings: GRPOSettings) {
        self.policy = policy
        self.reward = reward
        self.judge = judge
        self.settings = settings
    }

    /// A group of completions and what was decided about it.
    struct Group {
        var example: Example
        var completions: [Completion]
        var rewards: GroupRewards
        var feedback: Feedback?
    }

    /// Runs one step on prompts drawn from `next`.
    /// - Returns: the step's metrics and a few samples for the log.
    public func run(step: Int, next: () -> Example, rng: inout RandomState) throws -> (StepMetrics, [SampleRecord]) {
        let clock = ContinuousClock()
        let started = clock.now
        var metrics = StepMetrics()
        var kept: [Group] = []
        var plans: [GroupFilter.Plan] = []
        var pending = (0..<settings.promptsPerStep).map { _ in next() }
        rewardErrors = 0
        var generatedTokens = 0
        var latencies: [Double] = []
        var judgeErrors = 0
        var generationTime = Duration.zero, scoringTime = Duration.zero
        // Every group generated this step, resampled ones included (the kept
        // ones are what the groups/* metrics count).
        var sampledGroups = 0, sampledAllNegative = 0, judgedTokens = 0
        for round in 0... {
            guard !pending.isEmpty else { break }
            var phase = clock.now
            let generated = try policy.generate(
                pending.map(\.prompt), count: settings.groupSize, maxNewTokens: settings.maxNewTokens, rng: &rng)
            generationTime += clock.now - phase
            generatedTokens += generated.joined().map(\.tokens.count).reduce(0, +)
            phase = clock.now
            let groups = try score(pending, generated, latencies: &latencies, judgeErrors: &judgeErrors)
            scoringTime += clock.now - phase
            sampledGroups += groups.count
            sampledAllNegative += groups.filter { $0.rewards.kind == .allNegative }.count
            judgedTokens += groups.filter { $0.feedback != nil }.flatMap(\.completions).map(\.tokens.count).reduce(0, +)
            let plan = settings.strategy.filter.plan(
                kinds: groups.map(\.rewards.kind), dispositions: groups.map { $0.feedback?.disposition }, round: round)
            plans.append(plan)
            kept += plan.keep.map { groups[$0] }
            pending = plan.resample.map { _ in next() }
        }

        let scored = settings.strategy.advantages(groups: kept.map(\.rewards), feedback: kept.map(\.feedback))
        metrics.record(scored, plain: kept.map(\.rewards))
        metrics.record(plans: plans)
        metrics.recordFeedback(latenciesMs: latencies, errors: judgeErrors)
        metrics.set("reward/errors", Double(rewardErrors))
        let completions = kept.flatMap(\.completions)
        metrics.recordCompletions(lengths: completions.map(\.tokens.count))
        metrics.set("tokens/generated", Double(generatedTokens))
        metrics.set("sampling/groups", Double(sampledGroups))
        metrics.set("sampling/all_negative", Double(sampledAllNegative))
        metrics.set("feedback/judged_tokens", Double(judgedTokens))

        let phase = clock.now
        let update = try update(groups: kept, advantages: scored.advantages)
        if let update {
            metrics.record(update.loss)
            metrics.set("grad_norm", update.gradNorm)
        }
        let total = clock.now - started
        metrics.set("time/generation_s", seconds(generationTime))
        metrics.set("time/scoring_s", seconds(scoringTime))
        metrics.set("time/update_s", seconds(clock.now - phase))
        metrics.set("time/step_s", seconds(total))
        metrics.set("tokens_per_s", Double(generatedTokens) / max(seconds(total), 1e-9))

        return (metrics, samples(step: step, kept: kept, advantages: scored.advantages))
    }

    /// Rewards, and the judge's word on the groups the strategy diversifies.
    func score(_ examples: [Example], _ generated: [[Completion]], knownRewards: [[RewardScore]?]? = nil,
               latencies: inout [Double], judgeErrors: inout Int) throws -> [Group] {
        let clock = ContinuousClock()
        var batch = RewardBatch()
        for (example, group) in zip(examples, generated) {
            for completion in group {
                batch.append(prompt: example.prompt, completion: completion.text, reference: example.answer,
                             metadataJSON: example.metadataJSON)
            }
        }
        let needed = knownRewards.map { $0.contains { $0 == nil } } ?? true
        var scores: [RewardScore] = []
        if needed {
            do {
                scores = try reward.score(batch)
            } catch {
                // A failing or misbehaving reward plugin: this batch is not
                // applicable (its groups are dropped), the run goes on.
                rewardErrors += 1
                lastRewardError = "\(error)"
                scores = Array(repeating: RewardScore(reward: .nan, correct: false), count: batch.count)
            }
        }
        var groups: [Group] = []
        var offset = 0
        for (p, example) in examples.enumerated() {
            let count = generated[p].count
            let slice = knownRewards?[p] ?? Array(scores[offset..<(offset + count)])
            offset += count
            let rewards = GroupRewards(rewards: slice.map(\.reward), correct: slice.map(\.correct))
            var group = Group(example: example, completions: generated[p], rewards: rewards, feedback: nil)
            if let judge, settings.strategy.wantsFeedback(for: rewards) {
                let asked = clock.now
                do {
                    group.feedback = try judge.assess(FeedbackGroup(
                        prompt: example.prompt, reference: example.answer, referenceSteps: example.steps,
                        metadataJSON: example.metadataJSON, completions: generated[p].map(\.text),
                        rewards: rewards.rewards, correct: rewards.correct))
                } catch {
                    judgeErrors += 1
                    lastJudgeError = "\(error)"
                }
                latencies.append(1000 * seconds(clock.now - asked))
            }
            groups.append(group)
        }
        return groups
    }

    /// One step on pre-generated groups (offline GRPO): score what has no
    /// reward yet, judge, filter (no resampling is possible: such groups are
    /// dropped), compute advantages and update.
    public func run(step: Int, offline records: [OfflineGroup]) throws -> (StepMetrics, [SampleRecord]) {
        var latencies: [Double] = []
        var judgeErrors = 0
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
        let groups = try score(records.map(\.example), generated, knownRewards: known,
                               latencies: &latencies, judgeErrors: &judgeErrors)
        let plan = settings.strategy.filter.plan(
            kinds: groups.map(\.rewards.kind), dispositions: groups.map { $0.feedback?.disposition },
            round: settings.strategy.filter.maxResampleRounds)
        let kept = plan.keep.map { groups[$0] }
        let scored = settings.strategy.advantages(groups: kept.map(\.rewards), feedback: kept.map(\.feedback))
        var metrics = StepMetrics()
        metrics.record(scored, plain: kept.map(\.rewards))
        metrics.record(plans: [plan])
        metrics.recordFeedback(latenciesMs: latencies, errors: judgeErrors)
        metrics.recordCompletions(lengths: kept.flatMap(\.completions).map(\.tokens.count))
        if let update = try update(groups: kept, advantages: scored.advantages) {
            metrics.record(update.loss)
            metrics.set("grad_norm", update.gradNorm)
        }
        return (metrics, samples(step: step, kept: kept, advantages: scored.advantages))
    }

    func samples(step: Int, kept: [Group], advantages: [[Double]]) -> [SampleRecord] {
        var samples: [SampleRecord] = []
        for (g, group) in kept.prefix(2).enumerated() {
            for (i, completion) in group.completions.prefix(2).enumerated() {
                let r = group.rewards.rewards[i]
                samples.append(SampleRecord(
                    step: step, prompt: group.example.prompt, completion: completion.text, answer: group.example.answer,
                    reward: r.isNaN ? nil : r, correct: group.rewards.correct[i], advantage: advantages[g][i],
                    judgeScore: group.feedback.flatMap { $0.scores[i].isNaN ? nil : $0.scores[i] }))
            }
        }
        return samples
    }

    /// The policy-gradient update: the clipped token objective over every
    /// completion token, back-propagated through the backend.
    private func update(groups: [Group], advantages: [[Double]]) throws -> (loss: PolicyLoss.Output, gradNorm: Double)? {
        var sequences: [[Int32]] = []
        var starts: [Int] = []
        var rowAdvantages: [Double] = []
        for (group, groupAdvantages) in zip(groups, advantages) {
            for (completion, advantage) in zip(group.completions, groupAdvantages) where !completion.tokens.isEmpty {
                sequences.append(completion.sequence)
                starts.append(completion.promptTokens.count)
                rowAdvantages.append(advantage)
            }
        }
        guard !sequences.isEmpty, rowAdvantages.contains(where: { $0 != 0 }) || settings.loss.klBeta != 0 else { return nil }
        let batch = TokenBatch(sequences: sequences, pad: Int32(policy.info.padToken ?? 0))
        let temperature = policy.temperature
        let current = try policy.backend.logprobs(batch, model: .policy, temperature: temperature)
        let reference = settings.loss.klBeta != 0
            ? try policy.backend.logprobs(batch, model: .reference, temperature: temperature) : nil
        // Completion tokens only: [rows][longest completion].
        let lengths = zip(sequences, starts).map { $0.count - $1 }
        let width = lengths.max() ?? 0
        func completionPart(_ full: [Float]) -> [Double] {
            var out = [Double](repeating: 0, count: sequences.count * width)
            for r in sequences.indices {
                for j in 0..<lengths[r] { out[r * width + j] = Double(full[r * batch.stride + starts[r] + j]) }
            }
            return out
        }
        let logp = completionPart(current)
        // One update per batch: the sampling policy is the current one (ratio 1).
        let input = PolicyLoss.Input(
            logprobs: logp, oldLogprobs: logp, refLogprobs: reference.map(completionPart),
            lengths: lengths, advantages: rowAdvantages, stride: width)
        let loss = settings.loss.evaluate(input)
        var grad = [Float](repeating: 0, count: batch.rows * batch.stride)
        for r in sequences.indices {
            for j in 0..<lengths[r] { grad[r * batch.stride + starts[r] + j] = Float(loss.gradLogprob[r * width + j]) }
        }
        try policy.backend.backward(batch, temperature: temperature, gradLogprobs: grad)
        let norm = try policy.backend.optimizerStep(settings.optimizer)
        return (loss, norm)
    }
}

private func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}
