/// One group as a strategy sees it: the reward function's rewards and flags,
/// the judge's answer when it was asked, and each completion's length.
public struct StrategyGroup: Sendable, Equatable {
    /// `[G]` rewards (NaN = not applicable) and correctness flags.
    public var rewards: GroupRewards
    /// The judge's answer; nil when it was not asked or failed.
    public var feedback: Feedback?
    /// `[G]` completion lengths in tokens (the width of each response's
    /// per-token advantages).
    public var tokenCounts: [Int]
    /// `[G]` the index of the first completion token of the judge's first
    /// wrong step (the host maps the judge's byte span to tokens); nil when
    /// the judge found no error or did not say where it is.
    public var firstErrorTokens: [Int?]

    public init(rewards: GroupRewards, feedback: Feedback? = nil, tokenCounts: [Int], firstErrorTokens: [Int?]? = nil) {
        precondition(tokenCounts.count == rewards.count, "tokenCounts must be [G]")
        precondition(feedback.map { $0.scores.count == rewards.count } ?? true, "feedback must be [G]")
        precondition(firstErrorTokens.map { $0.count == rewards.count } ?? true, "firstErrorTokens must be [G]")
        self.rewards = rewards
        self.feedback = feedback
        self.tokenCounts = tokenCounts
        self.firstErrorTokens = firstErrorTokens ?? Array(repeating: nil, count: rewards.count)
    }
}

/// What a strategy does with a step's groups: which it wants judged, which
/// it keeps, and the advantages of the kept ones (the ABI's
/// `prism.strategy/1`). Built-in strategies (``Strategy``) and strategy
/// plugins both conform; the trainer sees only this.
public protocol GroupStrategy {
    /// Whether the judge is to be asked about `group` (it has no feedback yet).
    /// - Throws: when a plugin strategy fails; the group is then not judged.
    func wantsFeedback(for group: StrategyGroup) throws -> Bool
    /// The strategy's own word on a scored (and maybe judged) group: keep,
    /// drop, or resample (DAPO's dynamic sampling). The judge's disposition,
    /// when not `keep`, takes precedence.
    /// - Throws: when a plugin strategy fails; the group is then dropped.
    func disposition(for group: StrategyGroup) throws -> Disposition
    /// Rewards after shaping and advantages of the kept groups.
    /// - Parameter groups: `[groups]` the groups kept for the update.
    /// - Throws: when a plugin strategy fails or breaks the contract.
    func advantages(for groups: [StrategyGroup]) throws -> ScoredBatch
}

/// The groups of a step after rewards, diversification and advantages.
public struct ScoredBatch: Sendable, Equatable {
    /// `[groups]` each group's kind, from the reward function's flags.
    public var kinds: [GroupKind]
    /// `[groups][G]` rewards after diversification (the strategy's shaping).
    public var rewards: [[Double]]
    /// `[groups][G]` advantages, one per response.
    public var advantages: [[Double]]
    /// `[groups][G][tokens]` per-token advantages (each response's
    /// `tokenCounts[i]` values), or nil: the per-response ones broadcast.
    public var tokenAdvantages: [[[Double]]]?
    /// Groups with at least one re-rewarded response.
    public var diversifiedGroups: Int
    /// Responses re-rewarded by diversification.
    public var diversifiedResponses: Int
    /// Re-rewarded responses whose credit rule needed the first error's
    /// position and did not have it (they got sequence credit).
    public var unlocatedResponses: Int

    public init(kinds: [GroupKind], rewards: [[Double]], advantages: [[Double]], tokenAdvantages: [[[Double]]]? = nil,
                diversifiedGroups: Int = 0, diversifiedResponses: Int = 0, unlocatedResponses: Int = 0) {
        self.kinds = kinds
        self.rewards = rewards
        self.advantages = advantages
        self.tokenAdvantages = tokenAdvantages
        self.diversifiedGroups = diversifiedGroups
        self.diversifiedResponses = diversifiedResponses
        self.unlocatedResponses = unlocatedResponses
    }

    /// Groups in which every advantage (per response and per token) is
    /// zero: they teach nothing.
    public var zeroAdvantageGroups: Int {
        advantages.indices.filter { g in
            advantages[g].allSatisfy { $0 == 0 }
                && (tokenAdvantages?[g].allSatisfy { $0.allSatisfy { $0 == 0 } } ?? true)
        }.count
    }

    /// The advantage of token `t` of response `i` in group `g`.
    public func advantage(group g: Int, response i: Int, token t: Int) -> Double {
        tokenAdvantages?[g][i][t] ?? advantages[g][i]
    }
}
