/// Decides which groups stay in the batch, which are dropped and which are
/// replaced by freshly sampled ones: the strategy's and the judge's
/// dispositions, with a cap that never fails the run.
///
/// The trainer generates the batch (round 0), asks ``plan(kinds:dispositions:round:)``
/// which groups to replace, samples that many new groups (round 1), and so on.
/// When round `maxResampleRounds` is reached, groups still asking to be
/// resampled are dropped, the batch goes on with what it has, and the plan
/// says so (`capReached`, reported as the `sampling/cap_reached` metric).
/// Peers that raise at the cap are a known complaint on hard data.
public struct GroupFilter: Sendable, Equatable {
    /// Which groups a built-in strategy wants replaced (DAPO dynamic sampling).
    public enum Rule: String, Sendable, CaseIterable {
        /// Keep every group (dispositions from a judge still apply).
        case none
        /// Replace groups whose responses are all wrong or all right (no signal).
        case uniform
        /// Replace only all-negative groups.
        case allNegative = "all_negative"

        /// Whether a group of this kind is to be replaced.
        public func wantsReplacement(_ kind: GroupKind) -> Bool {
            switch self {
            case .none: false
            case .uniform: kind == .allNegative || kind == .allPositive
            case .allNegative: kind == .allNegative
            }
        }
    }

    /// Resampling rounds after the first generation; 0 = never resample
    /// (groups asking for it are dropped).
    public var maxResampleRounds: Int

    public init(maxResampleRounds: Int = 3) {
        precondition(maxResampleRounds >= 0, "maxResampleRounds must be >= 0")
        self.maxResampleRounds = maxResampleRounds
    }

    /// What to do with each group of one round.
    public struct Plan: Sendable, Equatable {
        /// Indices of groups to train on.
        public var keep: [Int] = []
        /// Indices of groups to leave out.
        public var drop: [Int] = []
        /// Indices of groups to replace with fresh ones in the next round.
        public var resample: [Int] = []
        /// True when groups wanted resampling but the cap was reached (they are in `drop`).
        public var capReached = false

        public init(keep: [Int] = [], drop: [Int] = [], resample: [Int] = [], capReached: Bool = false) {
            self.keep = keep
            self.drop = drop
            self.resample = resample
            self.capReached = capReached
        }
    }

    /// Plans one round.
    /// - Parameters:
    ///   - kinds: `[groups]` the kind of each group of this round.
    ///   - dispositions: `[groups]` the strategy's and the judge's word (nil = keep).
    ///   - round: 0 for the first generation, then 1, 2, ...
    public func plan(kinds: [GroupKind], dispositions: [Disposition?], round: Int) -> Plan {
        precondition(kinds.count == dispositions.count, "kinds and dispositions must both be [groups]")
        var plan = Plan()
        for (index, kind) in kinds.enumerated() {
            var disposition = dispositions[index] ?? .keep
            if kind == .notApplicable, disposition == .keep { disposition = .drop }
            switch disposition {
            case .keep: plan.keep.append(index)
            case .drop: plan.drop.append(index)
            case .resample:
                if round < maxResampleRounds {
                    plan.resample.append(index)
                } else {
                    plan.drop.append(index)
                    plan.capReached = true
                }
            }
        }
        return plan
    }
}
