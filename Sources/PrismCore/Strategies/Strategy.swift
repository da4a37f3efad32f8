/// The built-in strategies' one computation: an advantage estimator, an
/// optional SGPO diversification, and a resampling rule. Each built-in
/// descriptor (`Strategies/BuiltIn/`) builds one of these.
public struct Strategy: GroupStrategy, Sendable, Equatable {
    /// How rewards become advantages.
    public var estimator: AdvantageEstimator
    /// SGPO's judge-driven rewards for wrong responses; nil = no judge.
    public var diversification: Diversification?
    /// Which groups are resampled (dynamic sampling).
    public var filter: GroupFilter.Rule
    /// Added to the std before dividing.
    public var epsilon: Double
    /// Which tokens of a re-rewarded response its advantage reaches.
    public var credit: CreditRule

    public init(estimator: AdvantageEstimator = .grpo(), diversification: Diversification? = nil,
                filter: GroupFilter.Rule = .none, epsilon: Double = AdvantageEstimator.defaultEpsilon,
                credit: CreditRule = .sequence) {
        self.estimator = estimator
        self.diversification = diversification
        self.filter = filter
        self.epsilon = epsilon
        self.credit = credit
    }

    public func wantsFeedback(for group: StrategyGroup) -> Bool {
        diversification?.applies(to: group.rewards) ?? false
    }

    public func disposition(for group: StrategyGroup) -> Disposition {
        filter.wantsReplacement(group.rewards.kind) ? .resample : .keep
    }

    public func advantages(for groups: [StrategyGroup]) -> ScoredBatch {
        var batch = advantages(groups: groups.map(\.rewards), feedback: groups.map(\.feedback))
        guard credit != .sequence, let diversification else { return batch }
        var perToken: [[[Double]]] = []
        for (g, group) in groups.enumerated() {
            let a = batch.advantages[g]
            guard let feedback = group.feedback, diversification.applies(to: group.rewards) else {
                perToken.append(a.indices.map { Array(repeating: a[$0], count: group.tokenCounts[$0]) })
                continue
            }
            perToken.append(a.indices.map { i in
                let reRewarded = !group.rewards.correct[i] && !group.rewards.rewards[i].isNaN && !feedback.scores[i].isNaN
                guard reRewarded, feedback.firstErrors[i] != nil else {
                    return Array(repeating: a[i], count: group.tokenCounts[i])
                }
                if group.firstErrorTokens[i] == nil { batch.unlocatedResponses += 1 }
                return credit.tokenAdvantages(advantage: a[i], tokens: group.tokenCounts[i],
                                              firstErrorToken: group.firstErrorTokens[i])
            })
        }
        batch.tokenAdvantages = perToken
        return batch
    }

    /// The rewards and advantages of the groups kept for the update.
    ///
    /// - Parameters:
    ///   - groups: `[groups]` the reward function's rewards and flags.
    ///   - feedback: `[groups]` the judge's answer for each group, nil where
    ///     it was not asked or failed (then the group keeps its plain rewards).
    /// - Returns: rewards and advantages `[groups][G]` and the counts for metrics.
    public func advantages(groups: [GroupRewards], feedback: [Feedback?]) -> ScoredBatch {
        precondition(groups.count == feedback.count, "groups and feedback must both be [groups]")
        var rewards: [[Double]] = []
        var diversifiedGroups = 0
        var diversifiedResponses = 0
        for (group, answer) in zip(groups, feedback) {
            guard let diversification, let answer, diversification.applies(to: group) else {
                rewards.append(group.rewards)
                continue
            }
            let (graded, changed) = diversification.apply(to: group, scores: answer.scores)
            rewards.append(graded)
            diversifiedResponses += changed
            if changed > 0 { diversifiedGroups += 1 }
        }
        let advantages = estimator.advantages(rewards: rewards, correct: groups.map(\.correct), epsilon: epsilon)
        return ScoredBatch(
            kinds: groups.map(\.kind), rewards: rewards, advantages: advantages,
            diversifiedGroups: diversifiedGroups, diversifiedResponses: diversifiedResponses)
    }
}
