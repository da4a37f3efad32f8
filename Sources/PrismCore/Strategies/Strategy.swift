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

    public init(estimator: AdvantageEstimator = .grpo(), diversification: Diversification? = nil,
                filter: GroupFilter.Rule = .none, epsilon: Double = AdvantageEstimator.defaultEpsilon) {
        self.estimator = estimator
        self.diversification = diversification
        self.filter = filter
        self.epsilon = epsilon
    }

    public func wantsFeedback(for group: StrategyGroup) -> Bool {
        diversification?.applies(to: group.rewards) ?? false
    }

    public func disposition(for group: StrategyGroup) -> Disposition {
        filter.wantsReplacement(group.rewards.kind) ? .resample : .keep
    }

    public func advantages(for groups: [StrategyGroup]) -> ScoredBatch {
        advantages(groups: groups.map(\.rewards), feedback: groups.map(\.feedback))
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
