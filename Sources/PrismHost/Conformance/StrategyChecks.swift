import PrismCore

/// Conformance checks for `prism.strategy/1`.
struct StrategyChecks {
    let instance: PluginInstance
    let callCount: Int

    func run(_ record: (String, () throws -> String) -> Void) {
        let strategy: any GroupStrategy
        do {
            strategy = try instance.groupStrategy().strategy
        } catch {
            record("strategy: interface table") { throw error }
            return
        }
        let allWrong = StrategyGroup(
            rewards: GroupRewards(rewards: [0, 0, 0, 0], correct: [false, false, false, false]),
            feedback: Feedback(scores: [0.25, 0.5, 0.75, .nan], firstErrors: [0, 1, 2, nil]), tokenCounts: [5, 0, 7, 3])
        let mixed = StrategyGroup(
            rewards: GroupRewards(rewards: [1, 0, .nan, 1], correct: [true, false, false, true]), tokenCounts: [4, 6, 2, 9])
        let batch = [allWrong, mixed]
        record("strategy: no groups") {
            let scored = try strategy.advantages(for: [])
            try expect(scored.advantages.isEmpty, "returned advantages for no groups")
            return "ok"
        }
        record("strategy: empty group") {
            let empty = StrategyGroup(rewards: GroupRewards(rewards: [], correct: []), tokenCounts: [])
            _ = try strategy.disposition(for: empty)
            let scored = try strategy.advantages(for: [empty])
            try expect(scored.advantages == [[]], "returned \(scored.advantages) for an empty group")
            return "ok"
        }
        record("strategy: NaN rewards, no feedback, empty completions") {
            let scored = try strategy.advantages(for: batch)
            let shapes = scored.tokenAdvantages.map { $0.map { $0.map(\.count) } }
            try expect(shapes == nil || shapes! == batch.map(\.tokenCounts), "token advantages of shape \(shapes!)")
            return "advantages \(scored.advantages.map { $0.map { ($0 * 1000).rounded() / 1000 } })"
        }
        record("strategy: dispositions and judge requests") {
            let dispositions = try batch.map { try strategy.disposition(for: $0) }
            let asks = try batch.map { try strategy.wantsFeedback(for: $0) }
            return "dispositions \(dispositions.map { "\($0)" }), asks the judge \(asks)"
        }
        record("strategy: deterministic") {
            let first = try strategy.advantages(for: batch)
            let second = try strategy.advantages(for: batch)
            try expect(first.advantages == second.advantages && first.tokenAdvantages == second.tokenAdvantages,
                       "the same groups gave \(first.advantages) then \(second.advantages)")
            return "ok"
        }
        record("strategy: \(callCount) calls") {
            for _ in 0..<callCount { _ = try strategy.advantages(for: batch) }
            return "ok"
        }
    }
}
