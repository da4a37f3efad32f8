import Foundation
import PrismCore
import Testing

/// PrismCore's pure-Swift exp and log against the C library.
@Suite("Elementary functions")
struct ElementaryTests {
    @Test func expMatchesLibm() {
        var rng = RandomState(seed: 11)
        var worst = 0.0
        for _ in 0..<200_000 {
            let x = (rng.uniform() - 0.5) * 1400  // [-700, 700]
            let expected = Foundation.exp(x)
            worst = max(worst, abs(Elementary.exp(x) - expected) / expected)
        }
        print("exp: largest relative error \(worst)")
        #expect(worst < 1e-15)
        #expect(Elementary.exp(0) == 1)
        #expect(Elementary.exp(1000) == .infinity)
        #expect(Elementary.exp(-1000) == 0)
        #expect(Elementary.exp(.nan).isNaN)
        #expect(abs(Elementary.exp(-740) - Foundation.exp(-740)) <= Foundation.exp(-740) * 1e-3)  // subnormal
    }

    @Test func logMatchesLibm() {
        var rng = RandomState(seed: 12)
        var worst = 0.0
        for _ in 0..<200_000 {
            let x = Foundation.exp((rng.uniform() - 0.5) * 1400)
            let expected = Foundation.log(x)
            worst = max(worst, abs(Elementary.log(x) - expected) / max(abs(expected), 1e-300))
        }
        for x in [1.0, 1 + 1e-12, 0.999999, 2, 0.5, Double.leastNormalMagnitude / 4] {
            worst = max(worst, abs(Elementary.log(x) - Foundation.log(x)) / max(abs(Foundation.log(x)), 1e-12))
        }
        print("log: largest relative error \(worst)")
        #expect(worst < 1e-14)
        #expect(Elementary.log(1) == 0)
        #expect(Elementary.log(0) == -.infinity)
        #expect(Elementary.log(-1).isNaN)
    }

    @Test func sigmoidIsStableAtTheExtremes() {
        #expect(Elementary.sigmoid(0) == 0.5)
        #expect(Elementary.sigmoid(800) == 1)
        #expect(Elementary.sigmoid(-800) == 0)
        #expect(abs(Elementary.sigmoid(2.5) - 1 / (1 + Foundation.exp(-2.5))) < 1e-16)
    }
}
