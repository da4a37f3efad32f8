/// How a judge's score (RTS, the fraction of the solution before the first
/// error, in [0, 1]) becomes the reward of a wrong response: the SGPO step.
public enum RTSMap: Sendable, Equatable {
    /// `sigmoid(beta * (RTS - gamma))`: the SGPO logistic, increasing in RTS
    /// (the sign-corrected form; see Documentation/Math.md). Defaults 5, 0.5.
    case sigmoid(beta: Double = 5, gamma: Double = 0.5)
    /// `RTS` itself.
    case raw
    /// `ceiling * RTS`: a straight line from 0 to `ceiling` (default 0.9).
    case linear(ceiling: Double = 0.9)

    /// The reward for a wrong response with judge score `rts` in [0, 1].
    public func reward(rts: Double) -> Double {
        switch self {
        case .sigmoid(let beta, let gamma): Elementary.sigmoid(beta * (rts - gamma))
        case .raw: rts
        case .linear(let ceiling): ceiling * rts
        }
    }
}

/// Which responses SGPO re-rewards.
public enum DiversificationScope: String, Sendable, CaseIterable {
    /// Only the responses of all-negative groups (the paper's method).
    case allNegativeGroups = "all_negative"
    /// Every incorrect response, in any group (a variant seen in public
    /// re-implementations).
    case allIncorrect = "all_incorrect"
}

/// The SGPO step: replaces the flat rewards of wrong responses with graded
/// ones from a judge's scores.
public struct Diversification: Sendable, Equatable {
    public var map: RTSMap
    public var scope: DiversificationScope
    /// A diversified reward never exceeds this, so a wrong response always
    /// ranks below a correct one (reward 1) whatever the map and the judge say.
    public var maxIncorrectReward: Double

    public init(map: RTSMap = .sigmoid(), scope: DiversificationScope = .allNegativeGroups,
                maxIncorrectReward: Double = 0.999) {
        self.map = map
        self.scope = scope
        self.maxIncorrectReward = maxIncorrectReward
    }

    /// Whether this group's responses are to be judged and re-rewarded.
    public func applies(to group: GroupRewards) -> Bool {
        switch scope {
        case .allNegativeGroups: group.kind == .allNegative
        case .allIncorrect: group.kind == .allNegative || group.kind == .mixed
        }
    }

    /// The group's rewards after diversification.
    ///
    /// - Parameters:
    ///   - group: the reward function's rewards and flags, `[G]`.
    ///   - scores: the judge's scores `[G]` in [0, 1]; NaN = no opinion, which
    ///     leaves that response at its plain reward.
    /// - Returns: `[G]` rewards, and how many responses were re-rewarded.
    ///   Correct responses and NaN rewards (not applicable) are never changed;
    ///   groups the scope excludes are returned as they are.
    public func apply(to group: GroupRewards, scores: [Double]) -> (rewards: [Double], changed: Int) {
        precondition(scores.count == group.count, "scores must be [G]")
        guard applies(to: group) else { return (group.rewards, 0) }
        var rewards = group.rewards
        var changed = 0
        for i in rewards.indices where !group.correct[i] && !rewards[i].isNaN && !scores[i].isNaN {
            let rts = min(max(scores[i], 0), 1)
            rewards[i] = min(map.reward(rts: rts), maxIncorrectReward)
            changed += 1
        }
        return (rewards, changed)
    }
}
