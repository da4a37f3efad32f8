import PrismCore
import Testing

@Suite("Group kinds")
struct GroupKindTests {
    @Test func classification() {
        #expect(GroupKind(rewards: [0, 0, 0], correct: [false, false, false]) == .allNegative)
        #expect(GroupKind(rewards: [1, 1], correct: [true, true]) == .allPositive)
        #expect(GroupKind(rewards: [1, 0], correct: [true, false]) == .mixed)
        #expect(GroupKind(rewards: [], correct: []) == .notApplicable)
        #expect(GroupKind(rewards: [.nan, .nan], correct: [false, true]) == .notApplicable)
        // NaN responses do not count: the applicable one is wrong.
        #expect(GroupKind(rewards: [.nan, 0], correct: [true, false]) == .allNegative)
    }

    @Test func besselCorrectedStatistics() {
        let stats = SampleStatistics([1, 0, 0, 0, .nan])
        #expect(stats.count == 4 && stats.mean == 0.25 && stats.std == 0.5)
        #expect(SampleStatistics([3]).std == 0)
        #expect(SampleStatistics([Double]()).mean == 0)
    }
}

@Suite("SGPO diversification")
struct DiversificationTests {
    let allWrong = GroupRewards(rewards: [0, 0, 0, 0], correct: [false, false, false, false])

    @Test func mapsByHand() {
        // sigmoid(5 (RTS - 0.5)): 1/(1+e^2.5) = 0.0758582..., 0.5, 1/(1+e^-2.5) = 0.9241418...
        let sigmoid = RTSMap.sigmoid()
        #expect(abs(sigmoid.reward(rts: 0) - 0.07585818002124355) < 1e-15)
        #expect(sigmoid.reward(rts: 0.5) == 0.5)
        #expect(abs(sigmoid.reward(rts: 1) - 0.9241418199787566) < 1e-15)
        #expect(abs(RTSMap.sigmoid(beta: 2, gamma: 0.25).reward(rts: 0.75) - 0.7310585786300049) < 1e-15)
        #expect(RTSMap.raw.reward(rts: 0.25) == 0.25)
        #expect(RTSMap.linear().reward(rts: 0.5) == 0.45)
        #expect(RTSMap.linear(ceiling: 0.5).reward(rts: 1) == 0.5)
    }

    @Test func allNegativeGroupGetsGradedRewards() {
        let (rewards, changed) = Diversification().apply(to: allWrong, scores: [0, 0.5, 1, .nan])
        #expect(changed == 3)
        #expect(abs(rewards[0] - 0.07585818002124355) < 1e-15)
        #expect(rewards[1] == 0.5)
        #expect(abs(rewards[2] - 0.9241418199787566) < 1e-15)
        #expect(rewards[3] == 0)  // NaN score: plain reward
    }

    @Test func scopeDecidesWhichGroups() {
        let mixed = GroupRewards(rewards: [1, 0, .nan], correct: [true, false, false])
        let paper = Diversification(map: .raw)
        #expect(paper.apply(to: mixed, scores: [1, 0.5, 0.5]).changed == 0)
        let variant = Diversification(map: .raw, scope: .allIncorrect)
        let (rewards, changed) = variant.apply(to: mixed, scores: [1, 0.5, 0.5])
        #expect(changed == 1)
        #expect(rewards[0] == 1 && rewards[1] == 0.5 && rewards[2].isNaN)  // correct and NaN untouched
        let right = GroupRewards(rewards: [1, 1], correct: [true, true])
        #expect(variant.apply(to: right, scores: [0, 0]).changed == 0)
    }

    @Test func wrongNeverReachesTheCorrectReward() {
        // A judge that calls a wrong answer perfect, a map that would give 1.
        let (rewards, _) = Diversification(map: .raw).apply(to: allWrong, scores: [1, 1, 1, 1])
        #expect(rewards.allSatisfy { $0 < 1 })
        let steep = Diversification(map: .sigmoid(beta: 1000, gamma: 0))
        #expect(steep.apply(to: allWrong, scores: [1, 1, 1, 1]).rewards.allSatisfy { $0 < 1 })
        #expect(Diversification().apply(to: allWrong, scores: [7, -3, 0, 0]).rewards[0] < 1)  // clamped scores
    }
}
