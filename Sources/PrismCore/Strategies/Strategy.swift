/// A strategy for all-negative groups: what the step does with groups in
/// which every response is wrong, as one value the trainer configures.
///
/// The named presets are the strategies compared in the study; every part
/// (estimator, diversification, filter) can also be set on its own.
public struct Strategy: Sendable, Equatable {
    /// How rewards become advantages.
    public var estimator: AdvantageEstimator
    /// SGPO's judge-driven rewards for wrong responses; nil = no judge.
    public var diversification: Diversification?
    /// Dynamic sampling / dispositions.
    public var filter: GroupFilter

    public init(estimator: AdvantageEstimator = .grpo(), diversification: Diversification? = nil,
                filter: GroupFilter = GroupFilter()) {
        self.estimator = estimator
        self.diversification = diversification
        self.filter = filter
    }

    /// The preset names, as accepted by ``preset(_:)``.
    public static let presetNames = ["grpo", "sgpo", "dapo-filter", "nsr", "ngrpo", "rloo", "dr-grpo"]

    /// A named preset:
    /// - `grpo`: group-normalised advantages; all-negative groups learn nothing.
    /// - `sgpo`: grpo plus judge scores mapped by the SGPO logistic in all-negative groups.
    /// - `dapo-filter`: grpo; all-wrong and all-right groups are resampled (3 rounds).
    /// - `nsr`: +0.1 for correct, -1 for wrong, no baseline.
    /// - `ngrpo`: grpo statistics with a virtual reward-1 response.
    /// - `rloo`: leave-one-out baseline.
    /// - `dr-grpo`: `r - mean(r)`, no std division.
    /// - Returns: nil for an unknown name (see ``presetNames``).
    public static func preset(_ name: String) -> Strategy? {
        switch name {
        case "grpo": Strategy()
        case "sgpo": Strategy(diversification: Diversification())
        case "dapo-filter": Strategy(filter: GroupFilter(rule: .uniform, maxResampleRounds: 3))
        case "nsr": Strategy(estimator: .nsr())
        case "ngrpo": Strategy(estimator: .ngrpo())
        case "rloo": Strategy(estimator: .rloo)
        case "dr-grpo": Strategy(estimator: .grpo(scale: .none))
        default: nil
        }
    }

    /// Whether the judge is to be asked about `group`.
    public func wantsFeedback(for group: GroupRewards) -> Bool {
        diversification?.applies(to: group) ?? false
    }

    /// The rewards and advantages of the groups kept for the update.
    ///
    /// - Parameters:
    ///   - groups: `[groups]` the reward function's rewards and flags.
    ///   - feedback: `[groups]` the judge's answer for each group, nil where
    ///     it was not asked or failed (then the group keeps its plain rewards).
    ///   - epsilon: the std epsilon of the estimator.
    /// - Returns: rewards and advantages `[groups][G]` and the counts for metrics.
    public func advantages(groups: [GroupRewards], feedback: [Feedback?],
                           epsilon: Double = AdvantageEstimator.defaultEpsilon) -> ScoredBatch {
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

/// The groups of a step after rewards, diversification and advantages.
public struct ScoredBatch: Sendable, Equatable {
    /// `[groups]` each group's kind, from the reward function's flags.
    public var kinds: [GroupKind]
    /// `[groups][G]` rewards after diversification.
    public var rewards: [[Double]]
    /// `[groups][G]` advantages.
    public var advantages: [[Double]]
    /// Groups with at least one re-rewarded response.
    public var diversifiedGroups: Int
    /// Responses re-rewarded by diversification.
    public var diversifiedResponses: Int

    /// Groups in which every advantage is zero: they teach nothing.
    public var zeroAdvantageGroups: Int {
        advantages.filter { $0.allSatisfy { $0 == 0 } }.count
    }
}
