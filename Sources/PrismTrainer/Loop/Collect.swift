import PrismCore

/// A group of completions and what was decided about it.
struct CollectedGroup {
    var example: Example
    var completions: [Completion]
    var rewards: GroupRewards
    var feedback: Feedback?
    /// Per completion, the token where the judge's first error begins (nil:
    /// none, or not located).
    var firstErrorTokens: [Int?]? = nil

    var strategyGroup: StrategyGroup {
        StrategyGroup(rewards: rewards, feedback: feedback, tokenCounts: completions.map(\.tokens.count),
                      firstErrorTokens: firstErrorTokens)
    }
}

/// What the collect half of a step gathered, over all its rounds.
struct CollectedStep {
    /// The groups kept for the update, in order.
    var kept: [CollectedGroup] = []
    /// The filter's verdict on each round.
    var plans: [GroupFilter.Plan] = []
    /// Every group scored this step, resampled ones included.
    var sampledGroups = 0
    var sampledAllNegative = 0
    /// Answers scored this step whose reward is NaN, dropped groups included.
    var notApplicableRewards = 0
    var generatedTokens = 0
    /// Tokens of the completions the judge read.
    var judgedTokens = 0
    /// What the judge reported about its calls (tokens, failures by cause).
    var judgeReport = FeedbackReport()
    var judgeLatenciesMs: [Double] = []
    var judgeErrors = 0
    var rewardErrors = 0
    var strategyErrors = 0
    var generationTime = Duration.zero
    var scoringTime = Duration.zero
}

extension GRPOStep {
    /// Scores one round of groups, asks the judge where the strategy wants
    /// it, and plans the round.
    /// - Parameters:
    ///   - known: per group, rewards that came with the data (offline), or nil.
    ///   - round: 0 for the first generation; at `maxResampleRounds` a group
    ///     asking to be resampled is dropped.
    /// - Returns: how many groups to resample.
    func collect(_ examples: [Example], _ generated: [[Completion]], known: [[RewardScore]?]?, round: Int,
                 into collected: inout CollectedStep) throws -> Int {
        let clock = ContinuousClock()
        let started = clock.now
        let groups = try score(examples, generated, known: known, into: &collected)
        collected.scoringTime += clock.now - started
        collected.sampledGroups += groups.count
        collected.sampledAllNegative += groups.filter { $0.rewards.kind == .allNegative }.count
        collected.notApplicableRewards += groups.flatMap(\.rewards.rewards).filter(\.isNaN).count
        var dispositions: [Disposition?] = []
        for group in groups {
            if let judged = group.feedback?.disposition, judged != .keep {
                dispositions.append(judged)
                continue
            }
            do {
                dispositions.append(try settings.strategy.disposition(for: group.strategyGroup))
            } catch let stop as Cancelled {
                throw stop
            } catch {
                collected.strategyErrors += 1
                lastStrategyError = "\(error)"
                dispositions.append(.drop)
            }
        }
        let plan = GroupFilter(maxResampleRounds: settings.maxResampleRounds)
            .plan(kinds: groups.map(\.rewards.kind), dispositions: dispositions, round: round)
        collected.plans.append(plan)
        collected.kept += plan.keep.map { groups[$0] }
        return plan.resample.count
    }

    /// Rewards (from the data or the reward plugin), and the judge's word on
    /// the groups the strategy wants judged.
    private func score(_ examples: [Example], _ generated: [[Completion]], known: [[RewardScore]?]?,
                       into collected: inout CollectedStep) throws -> [CollectedGroup] {
        let clock = ContinuousClock()
        var batch = RewardBatch()
        for (example, group) in zip(examples, generated) {
            for completion in group {
                batch.append(prompt: example.prompt, completion: completion.text, reference: example.answer,
                             metadataJSON: example.metadataJSON)
            }
        }
        var scores: [RewardScore] = []
        if known.map({ $0.contains { $0 == nil } }) ?? true {
            do {
                try policy.checkStop("reward.score")
                scores = try reward.score(batch)
            } catch let stop as Cancelled {
                throw stop
            } catch {
                // A failing or misbehaving reward plugin: this batch is not
                // applicable (its groups are dropped), the run goes on.
                collected.rewardErrors += 1
                lastRewardError = "\(error)"
                scores = Array(repeating: RewardScore(reward: .nan, correct: false), count: batch.count)
            }
        }
        var groups: [CollectedGroup] = []
        var offset = 0
        for (p, example) in examples.enumerated() {
            let count = generated[p].count
            let slice = known?[p] ?? Array(scores[offset..<(offset + count)])
            offset += count
            let rewards = GroupRewards(rewards: slice.map(\.reward), correct: slice.map(\.correct))
            var group = CollectedGroup(example: example, completions: generated[p], rewards: rewards, feedback: nil)
            if let judge, try wantsFeedback(group, into: &collected) {
                let asked = clock.now
                var report = FeedbackReport()
                // A judge that reports its model's usage is charged that, also when it fails.
                defer {
                    collected.judgeReport = collected.judgeReport + report
                    collected.judgedTokens += report.promptTokens + report.completionTokens
                }
                do {
                    try policy.checkStop("judge.assess")
                    group.feedback = try judge.assess(FeedbackGroup(
                        prompt: example.prompt, reference: example.answer, referenceSteps: example.steps,
                        metadataJSON: example.metadataJSON, completions: generated[p].map(\.text),
                        rewards: rewards.rewards, correct: rewards.correct), report: &report)
                    if report.promptTokens + report.completionTokens == 0 {
                        collected.judgedTokens += generated[p].map(\.tokens.count).reduce(0, +)
                    }
                    group.firstErrorTokens = zip(generated[p], group.feedback!.firstErrorSpans).map { completion, span in
                        // A tokenizer that fails here leaves the error unlocated (counted as such).
                        span.flatMap { try? policy.tokenIndex(ofByte: $0.lowerBound, in: completion.tokens) }
                    }
                } catch let stop as Cancelled {
                    throw stop
                } catch {
                    collected.judgeErrors += 1
                    lastJudgeError = "\(error)"
                }
                collected.judgeLatenciesMs.append(1000 * seconds(clock.now - asked))
            }
            groups.append(group)
        }
        return groups
    }

    /// The strategy's answer to "judge this group?"; a failing strategy
    /// plugin counts as no (the group stays undiversified) and is counted.
    private func wantsFeedback(_ group: CollectedGroup, into collected: inout CollectedStep) throws -> Bool {
        do {
            return try settings.strategy.wantsFeedback(for: group.strategyGroup)
        } catch let stop as Cancelled {
            throw stop
        } catch {
            collected.strategyErrors += 1
            lastStrategyError = "\(error)"
            return false
        }
    }
}
