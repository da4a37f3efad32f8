import PrismCore
import Testing

/// Hand-computed fixtures, properties and edge cases of the estimators.
@Suite("Advantage estimators")
struct AdvantageTests {
    let eps = AdvantageEstimator.defaultEpsilon

    func close(_ a: [[Double]], _ b: [[Double]], _ tolerance: Double = 1e-12) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { x, y in
            x.count == y.count && zip(x, y).allSatisfy { abs($0 - $1) <= tolerance }
        }
    }

    func flags(_ rewards: [[Double]]) -> [[Bool]] { rewards.map { $0.map { $0 == 1 } } }

    // MARK: fixtures

    @Test func grpoGroupScale() {
        // r = [1,0,0,0]: mean 0.25, Bessel std sqrt(0.75/3) = 0.5.
        let a = AdvantageEstimator.grpo().advantages(rewards: [[1, 0, 0, 0]], correct: [[true, false, false, false]])
        let d = 0.5 + eps
        #expect(close(a, [[0.75 / d, -0.25 / d, -0.25 / d, -0.25 / d]]))
    }

    @Test func grpoBatchScale() {
        // Group means 0.5 and 0; batch std of [1,0,0,0] is 0.5.
        let r: [[Double]] = [[1, 0], [0, 0]]
        let a = AdvantageEstimator.grpo(scale: .batch).advantages(rewards: r, correct: flags(r))
        #expect(close(a, [[0.5 / (0.5 + eps), -0.5 / (0.5 + eps)], [0, 0]]))
    }

    @Test func drGRPOHasNoStdDivision() {
        let a = AdvantageEstimator.grpo(scale: .none).advantages(rewards: [[1, 0, 0, 0]], correct: [[true, false, false, false]])
        #expect(close(a, [[0.75, -0.25, -0.25, -0.25]]))
    }

    @Test func rlooLeavesOneOut() {
        // A_1 = 1 - mean(0,0,0) = 1; A_j = 0 - mean(1,0,0) = -1/3.
        let a = AdvantageEstimator.rloo.advantages(rewards: [[1, 0, 0, 0]], correct: [[true, false, false, false]])
        #expect(close(a, [[1, -1.0 / 3, -1.0 / 3, -1.0 / 3]]))
    }

    @Test func ngrpoGivesAllWrongGroupsNegativeAdvantages() {
        // [0,0,0] + virtual 1: mean 0.25, std 0.5.
        let a = AdvantageEstimator.ngrpo().advantages(rewards: [[0, 0, 0]], correct: [[false, false, false]])
        #expect(close(a, [[-0.25 / (0.5 + eps), -0.25 / (0.5 + eps), -0.25 / (0.5 + eps)]]))
        // A perfect group: [1,1] + 1 has std 0, so advantages 0.
        #expect(close(AdvantageEstimator.ngrpo().advantages(rewards: [[1, 1]], correct: [[true, true]]), [[0, 0]]))
    }

    @Test func nsrHasNoBaseline() {
        let a = AdvantageEstimator.nsr(lambda: 0.1).advantages(
            rewards: [[1, 0, .nan], [0, 0, 0]], correct: [[true, false, false], [false, false, false]])
        #expect(close(a, [[0.1, -1, 0], [-1, -1, -1]]))
    }

    @Test func nanRewardsAreLeftOut() {
        // Statistics over [1, 0]: mean 0.5, std sqrt(0.5).
        let a = AdvantageEstimator.grpo().advantages(rewards: [[1, .nan, 0]], correct: [[true, false, false]])
        let d = 0.5.squareRoot() + eps
        #expect(close(a, [[0.5 / d, 0, -0.5 / d]]))
    }

    @Test func sgpoFixtureThroughTheStrategy() {
        // All-negative group, judge RTS [0, 0.5, 1, 0.5] -> sigmoid rewards.
        let group = GroupRewards(rewards: [0, 0, 0, 0], correct: [false, false, false, false])
        let batch = Strategy(diversification: Diversification()).advantages(
            groups: [group], feedback: [Feedback(scores: [0, 0.5, 1, 0.5], firstErrors: [0, 1, 2, 1])])
        let r = [0.07585818002124355, 0.5, 0.9241418199787566, 0.5]
        let mean = r.reduce(0, +) / 4
        let std = (r.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 3).squareRoot()
        #expect(close(batch.rewards, [r], 1e-15))
        #expect(close(batch.advantages, [r.map { ($0 - mean) / (std + eps) }]))
        #expect(batch.diversifiedGroups == 1 && batch.diversifiedResponses == 4)
        // Plain GRPO on the same group learns nothing.
        let plain = Strategy().advantages(groups: [group], feedback: [nil])
        #expect(plain.zeroAdvantageGroups == 1)
    }

    // MARK: properties

    func randomGroups(_ rng: inout RandomState, groups: Int, size: Int) -> [[Double]] {
        (0..<groups).map { _ in (0..<size).map { _ in (rng.uniform() * 4).rounded() / 4 } }
    }

    @Test func grpoAndRlooSumToZeroInEveryGroup() {
        var rng = RandomState(seed: 1)
        for estimator in [AdvantageEstimator.grpo(), .grpo(scale: .batch), .grpo(scale: .none), .rloo] {
            let r = randomGroups(&rng, groups: 50, size: 8)
            for group in estimator.advantages(rewards: r, correct: flags(r)) {
                #expect(abs(group.reduce(0, +)) < 1e-9, "\(estimator)")
            }
        }
    }

    @Test func grpoIsInvariantToAffineRewardChanges() {
        var rng = RandomState(seed: 2)
        let r = randomGroups(&rng, groups: 50, size: 8)
        let base = AdvantageEstimator.grpo().advantages(rewards: r, correct: flags(r), epsilon: 0)
        for (a, b) in [(3.0, -1.0), (0.5, 7.0), (100.0, 0.0)] {
            let moved = r.map { $0.map { a * $0 + b } }
            let shifted = AdvantageEstimator.grpo().advantages(rewards: moved, correct: flags(r), epsilon: 0)
            #expect(close(base, shifted, 1e-9))
        }
        // With the default epsilon the invariance holds up to eps/std.
        let withEps = AdvantageEstimator.grpo().advantages(rewards: r.map { $0.map { 10 * $0 } }, correct: flags(r))
        let reference = AdvantageEstimator.grpo().advantages(rewards: r, correct: flags(r))
        #expect(close(withEps, reference, 1e-2))
    }

    @Test func diversifiedAllNegativeGroupHasSignalIffScoresDiffer() {
        var rng = RandomState(seed: 3)
        let sgpo = Strategy(diversification: Diversification())
        let group = GroupRewards(rewards: Array(repeating: 0, count: 6), correct: Array(repeating: false, count: 6))
        for trial in 0..<200 {
            let scores: [Double] = trial % 2 == 0
                ? Array(repeating: (rng.uniform() * 5).rounded() / 5, count: 6)
                : (0..<6).map { _ in (rng.uniform() * 5).rounded() / 5 }
            let allEqual = Set(scores).count == 1
            let batch = sgpo.advantages(groups: [group], feedback: [Feedback(scores: scores, firstErrors: scores.map { _ in 0 })])
            let nonZero = batch.advantages[0].contains { $0 != 0 }
            #expect(nonZero == !allEqual, "scores \(scores)")
        }
    }

    @Test func correctAlwaysOutranksDiversifiedWrong() {
        var rng = RandomState(seed: 4)
        for map in [RTSMap.sigmoid(), .raw, .linear(), .sigmoid(beta: 50, gamma: 0)] {
            let strategy = Strategy(diversification: Diversification(map: map, scope: .allIncorrect))
            for _ in 0..<100 {
                let correct = (0..<8).map { $0 == 0 || rng.uniform() < 0.3 }
                let group = GroupRewards(rewards: correct.map { $0 ? 1 : 0 }, correct: correct)
                let scores = (0..<8).map { _ in rng.uniform() < 0.1 ? 1 : rng.uniform() }
                let batch = strategy.advantages(groups: [group], feedback: [Feedback(scores: scores, firstErrors: scores.map { _ in nil })])
                let worstCorrect = zip(batch.advantages[0], correct).filter { $0.1 }.map(\.0).min()!
                let bestWrong = zip(batch.advantages[0], correct).filter { !$0.1 }.map(\.0).max() ?? -.infinity
                #expect(worstCorrect > bestWrong, "\(map) \(scores)")
            }
        }
    }

    // MARK: edge cases

    @Test func edgeCases() {
        for estimator in [AdvantageEstimator.grpo(), .grpo(scale: .batch), .grpo(scale: .none), .rloo, .ngrpo(), .nsr()] {
            // Empty batch.
            #expect(estimator.advantages(rewards: [], correct: []).isEmpty)
            // G = 1 and an empty group.
            let single = estimator.advantages(rewards: [[1], []], correct: [[true], []])
            #expect(single[1].isEmpty)
            // All NaN: advantage 0.
            #expect(estimator.advantages(rewards: [[.nan, .nan]], correct: [[false, true]]) == [[0, 0]])
            // Very large G: finite.
            var rng = RandomState(seed: 5)
            let big = [(0..<100_000).map { _ in rng.uniform() < 0.01 ? 1.0 : 0.0 }]
            let a = estimator.advantages(rewards: big, correct: flags(big))
            #expect(a[0].allSatisfy { $0.isFinite })
        }
        // std = 0: identical rewards give zeros, not a division blow-up.
        #expect(AdvantageEstimator.grpo().advantages(rewards: [[0.5, 0.5, 0.5]], correct: [[false, false, false]]) == [[0, 0, 0]])
        #expect(AdvantageEstimator.grpo().advantages(rewards: [[1]], correct: [[true]]) == [[0]])
        #expect(AdvantageEstimator.rloo.advantages(rewards: [[1]], correct: [[true]]) == [[0]])
    }
}
