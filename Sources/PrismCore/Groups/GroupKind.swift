/// How a group of G responses to one prompt turned out.
///
/// Classified from the reward function's correctness flags over the
/// *applicable* responses (those whose reward is not NaN).
public enum GroupKind: String, Sendable, CaseIterable {
    /// No applicable response is correct: vanilla GRPO learns nothing here.
    case allNegative = "all_negative"
    /// Every applicable response is correct.
    case allPositive = "all_positive"
    /// Some correct, some not.
    case mixed
    /// No applicable response at all (every reward NaN, or G = 0).
    case notApplicable = "not_applicable"

    /// Classifies one group.
    /// - Parameters:
    ///   - rewards: `[G]`; NaN marks a response the reward does not apply to.
    ///   - correct: `[G]` correctness flags.
    public init(rewards: [Double], correct: [Bool]) {
        precondition(rewards.count == correct.count, "rewards and correct must both be [G]")
        var applicable = 0
        var right = 0
        for (reward, ok) in zip(rewards, correct) where !reward.isNaN {
            applicable += 1
            if ok { right += 1 }
        }
        if applicable == 0 {
            self = .notApplicable
        } else if right == 0 {
            self = .allNegative
        } else if right == applicable {
            self = .allPositive
        } else {
            self = .mixed
        }
    }
}

/// The rewards of one group as the reward function gave them.
public struct GroupRewards: Sendable, Equatable {
    /// `[G]`; NaN = not applicable (excluded from baselines, advantage 0).
    public var rewards: [Double]
    /// `[G]`.
    public var correct: [Bool]

    public init(rewards: [Double], correct: [Bool]) {
        precondition(rewards.count == correct.count, "rewards and correct must both be [G]")
        self.rewards = rewards
        self.correct = correct
    }

    public var kind: GroupKind { GroupKind(rewards: rewards, correct: correct) }
    public var count: Int { rewards.count }
}
