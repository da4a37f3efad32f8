import PrismCore
import Testing

@Suite("Group filter and metrics")
struct FilterAndMetricsTests {
    let kinds: [GroupKind] = [.allNegative, .mixed, .allPositive, .notApplicable]

    @Test func dapoFilterResamplesUniformGroupsUntilTheCap() {
        let filter = GroupFilter(maxResampleRounds: 2)
        let dapo = kinds.map { GroupFilter.Rule.uniform.wantsReplacement($0) ? Disposition.resample : nil }
        let first = filter.plan(kinds: kinds, dispositions: dapo, round: 0)
        #expect(first == GroupFilter.Plan(keep: [1], drop: [3], resample: [0, 2], capReached: false))
        // At the cap the batch goes on with what it has: no error, a flag.
        let last = filter.plan(kinds: kinds, dispositions: dapo, round: 2)
        #expect(last == GroupFilter.Plan(keep: [1], drop: [0, 2, 3], resample: [], capReached: true))
    }

    @Test func judgeDispositionsAreFollowed() {
        let filter = GroupFilter()
        let plan = filter.plan(kinds: [.allNegative, .allNegative, .mixed],
                               dispositions: [.drop, .resample, .keep], round: 0)
        #expect(plan == GroupFilter.Plan(keep: [2], drop: [0], resample: [1], capReached: false))
        let noRounds = GroupFilter(maxResampleRounds: 0)
        #expect(noRounds.plan(kinds: [.allNegative], dispositions: [.resample], round: 0).capReached)
    }

    @Test func builtInStrategiesResolve() throws {
        let registry = StrategyRegistry.builtIn
        for name in registry.names { #expect(try registry.descriptor(name)!.strategy() is Strategy, "\(name)") }
        #expect(registry.descriptor("sgp0") == nil)
        #expect(try registry.descriptor("dapo-filter")!.strategy() as? Strategy == Strategy(filter: .uniform))
        #expect(try registry.descriptor("dr-grpo")!.strategy() as? Strategy == Strategy(estimator: .grpo(scale: .none)))
        #expect(registry.names.filter { registry.descriptor($0)!.needsJudge } == ["sgpo"])
    }

    @Test func aParameterMeansTheSameInEveryStrategy() {
        let registry = StrategyRegistry.builtIn
        for parameter in registry.descriptors.flatMap(\.parameters) {
            let first = registry.parameters.first { $0.name == parameter.name }!
            #expect(first.kind == parameter.kind && first.help == parameter.help, "\(parameter.name)")
            #expect(parameter.accepts(parameter.defaultValue), "\(parameter.name)")
        }
    }

    @Test func theStrategyAndTheJudgeDispose() {
        let dapo = Strategy(filter: .uniform)
        let group = { (correct: [Bool]) in
            StrategyGroup(rewards: GroupRewards(rewards: correct.map { $0 ? 1 : 0 }, correct: correct), tokenCounts: correct.map { _ in 3 })
        }
        #expect(dapo.disposition(for: group([false, false])) == .resample)
        #expect(dapo.disposition(for: group([true, false])) == .keep)
        #expect(Strategy().disposition(for: group([false, false])) == .keep)
    }

    @Test func metricsCountsAreConsistent() {
        let groups = [
            GroupRewards(rewards: [0, 0], correct: [false, false]),
            GroupRewards(rewards: [1, 0], correct: [true, false]),
            GroupRewards(rewards: [1, .nan], correct: [true, false]),
        ]
        let batch = Strategy(diversification: Diversification()).advantages(
            groups: groups, feedback: [Feedback(scores: [0.2, 0.8], firstErrors: [0, 1]), nil, nil])
        var metrics = StepMetrics()
        metrics.record(batch, plain: groups)
        metrics.record(plans: [GroupFilter.Plan(keep: [0, 1, 2])])
        #expect(metrics["groups/total"] == 3)
        #expect(metrics["groups/all_negative"] == 1 && metrics["groups/mixed"] == 1 && metrics["groups/all_positive"] == 1)
        #expect(metrics["groups/diversified"] == 1 && metrics["responses/diversified"] == 2)
        #expect(metrics["groups/dropped"] == 0 && metrics["sampling/cap_reached"] == 0)
        #expect(metrics["reward"] == 0.4)  // mean of [0, 0, 1, 0, 1]
        #expect(metrics["accuracy"] == 0.4)
        #expect(metrics["groups/zero_advantage"] == 1)  // the all-positive group
        let names = metrics.entries.map(\.name)
        #expect(names.starts(with: ["groups/total", "groups/all_negative", "groups/all_positive", "groups/mixed"]))
    }
}
