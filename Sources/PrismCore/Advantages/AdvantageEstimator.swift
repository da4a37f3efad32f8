/// How the per-group standard deviation scales GRPO advantages.
public enum AdvantageScale: String, Sendable, CaseIterable {
    /// Divide by the group's std (original GRPO).
    case group
    /// Divide by the std of every reward in the batch (TRL's `scale_rewards="batch"`).
    case batch
    /// No division: `r - mean` (Dr. GRPO).
    case none
}

/// Turns the rewards of each group into one advantage per response.
///
/// Conventions, as in the peer systems: standard deviations are
/// Bessel-corrected (`SampleStatistics`), `epsilon` (default 1e-4) is added
/// to the std before dividing, and responses whose reward is NaN ("not
/// applicable") are left out of every statistic and get advantage 0.
public enum AdvantageEstimator: Sendable, Equatable {
    /// `(r - mean(r)) / (std + eps)` with the std chosen by `scale`.
    case grpo(scale: AdvantageScale = .group)
    /// Leave-one-out baseline: `r_i - mean_{j != i} r_j`; 0 when G = 1.
    case rloo
    /// NGRPO: the statistics include a virtual response with reward
    /// `maxReward`, so an all-wrong group gets negative advantages:
    /// `(r - mean(r ∪ {r_max})) / (std(r ∪ {r_max}) + eps)`.
    case ngrpo(maxReward: Double = 1)
    /// Negative-sample reinforcement / W-REINFORCE: no baseline; `+lambda`
    /// for a correct response, `-1` for a wrong one.
    case nsr(lambda: Double = 0.1)

    public static let defaultEpsilon = 1e-4

    /// Advantages for a batch of groups.
    /// - Parameters:
    ///   - rewards: `[groups][G]` rewards (after any diversification); NaN = not applicable.
    ///   - correct: `[groups][G]` correctness flags (used by `nsr`).
    ///   - epsilon: added to the std before dividing.
    /// - Returns: `[groups][G]` advantages.
    public func advantages(rewards: [[Double]], correct: [[Bool]], epsilon: Double = defaultEpsilon) -> [[Double]] {
        precondition(rewards.count == correct.count, "rewards and correct must both be [groups][G]")
        let batchStd = SampleStatistics(rewards.joined()).std
        return zip(rewards, correct).map { group, flags in
            precondition(group.count == flags.count, "rewards and correct must both be [groups][G]")
            return advantages(group: group, correct: flags, batchStd: batchStd, epsilon: epsilon)
        }
    }

    /// Advantages for one group `[G]`; `batchStd` is used by `.grpo(scale: .batch)`.
    func advantages(group r: [Double], correct: [Bool], batchStd: Double, epsilon: Double) -> [Double] {
        let stats = SampleStatistics(r)
        func each(_ f: (Int) -> Double) -> [Double] {
            r.indices.map { r[$0].isNaN ? 0 : f($0) }
        }
        switch self {
        case .grpo(let scale):
            let divisor: Double
            switch scale {
            case .group: divisor = stats.std + epsilon
            case .batch: divisor = batchStd + epsilon
            case .none: divisor = 1
            }
            return each { divisor > 0 ? (r[$0] - stats.mean) / divisor : 0 }
        case .rloo:
            let n = Double(stats.count)
            guard stats.count > 1 else { return each { _ in 0 } }
            // r_i - (sum - r_i)/(n - 1) = n/(n - 1) · (r_i - mean)
            return each { n / (n - 1) * (r[$0] - stats.mean) }
        case .ngrpo(let maxReward):
            let augmented = SampleStatistics(r + [maxReward])
            let divisor = augmented.std + epsilon
            return each { divisor > 0 ? (r[$0] - augmented.mean) / divisor : 0 }
        case .nsr(let lambda):
            return each { correct[$0] ? lambda : -1 }
        }
    }
}
