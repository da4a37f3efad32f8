import PrismCore
import Testing

/// The token objective: hand fixtures, and `grad_logprob` against the
/// numerical derivative of the loss in every aggregation, clip setting and KL
/// estimator.
@Suite("Policy loss")
struct PolicyLossTests {
    /// Random inputs whose ratios stay away from every clip boundary (so the
    /// loss is differentiable at them).
    /// With `perToken`, every token gets an advantage of its own (signs
    /// mixed within a row), as a strategy's credit rule would give.
    static func randomInput(_ rng: inout RandomState, rows: Int, stride: Int, loss: PolicyLoss,
                            perToken: Bool = false) -> PolicyLoss.Input {
        var logp: [Double] = [], old: [Double] = [], ref: [Double] = []
        let boundaries = [1 - loss.epsilonLow, 1 + loss.epsilonHigh, loss.dualClip ?? -1]
        for _ in 0..<(rows * stride) {
            var lp = 0.0, o = 0.0
            repeat {
                lp = -3 * rng.uniform() - 0.01
                o = lp + (rng.uniform() - 0.5) * 2.4  // ratios from e^-1.2 to e^1.2
            } while boundaries.contains { abs(Elementary.exp(lp - o) - $0) < 1e-3 }
            logp.append(lp)
            old.append(o)
            ref.append(lp + (rng.uniform() - 0.5))
        }
        let lengths = (0..<rows).map { $0 == 0 ? stride : Int(rng.uniform() * Double(stride + 1)) }
        let advantages = (0..<rows).map { $0 % 3 == 2 ? 0 : (rng.uniform() - 0.5) * 4 }
        let tokenAdvantages = perToken ? (0..<(rows * stride)).map { _ in (rng.uniform() - 0.5) * 4 } : nil
        return PolicyLoss.Input(logprobs: logp, oldLogprobs: old, refLogprobs: ref, lengths: lengths,
                                advantages: advantages, tokenAdvantages: tokenAdvantages, stride: stride)
    }

    /// d loss / d logprob[t] by a fourth-order central difference.
    static func numericGradient(_ loss: PolicyLoss, _ input: PolicyLoss.Input, at t: Int, h: Double = 1e-5) -> Double {
        func shifted(_ k: Double) -> Double {
            var moved = input
            moved.logprobs[t] += k * h
            return loss.evaluate(moved).loss
        }
        return (shifted(-2) - 8 * shifted(-1) + 8 * shifted(1) - shifted(2)) / (12 * h)
    }

    static var settings: [PolicyLoss] {
        var all: [PolicyLoss] = []
        for aggregation in LossAggregation.allCases {
            for kl in KLEstimator.allCases {
                for clip in 0..<3 {
                    var loss = PolicyLoss()
                    loss.aggregation = aggregation
                    loss.klEstimator = kl
                    loss.klBeta = clip == 2 ? 0 : 0.3
                    switch clip {
                    case 0: break  // symmetric 0.2
                    case 1: loss.epsilonLow = 0.1; loss.epsilonHigh = 0.28; loss.dualClip = 2
                    default: loss.epsilonLow = 0.3; loss.epsilonHigh = 0.3; loss.constantLength = 12
                    }
                    all.append(loss)
                }
            }
        }
        return all
    }

    @Test func gradientMatchesFiniteDifferences() {
        var rng = RandomState(seed: 21)
        var worst = 0.0
        var clippedTokens = 0
        for loss in Self.settings {
            for trial in 0..<5 {
                let input = Self.randomInput(&rng, rows: 5, stride: 7, loss: loss, perToken: trial >= 3)
                let output = loss.evaluate(input)
                clippedTokens += Int((output.clipFractionLow + output.clipFractionHigh) * Double(output.tokens))
                for t in input.logprobs.indices {
                    let numeric = Self.numericGradient(loss, input, at: t)
                    let analytic = output.gradLogprob[t]
                    // Relative error, floored at 1e-4: the central difference
                    // itself carries ~1e-11 of rounding noise (eps·|loss|/h), so
                    // smaller gradients have no meaningful relative error.
                    let error = abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-4)
                    worst = max(worst, error)
                    #expect(error < 1e-6, "\(loss.aggregation) \(loss.klEstimator) token \(t): \(analytic) vs \(numeric)")
                }
            }
        }
        print("grad_logprob vs finite differences: largest relative error \(worst) over \(Self.settings.count) settings")
        #expect(clippedTokens > 0, "the random inputs must exercise the clipped branches")
    }

    @Test func tokenAdvantagesReplaceTheRowsAdvantage() {
        // Row advantage 5, but the tokens' own are 0 and -1: the first token
        // gets no gradient, the second the negative-advantage one.
        let input = PolicyLoss.Input(logprobs: [-1, -1], oldLogprobs: [-1, -1], lengths: [2], advantages: [5],
                                     tokenAdvantages: [0, -1], stride: 2)
        let output = PolicyLoss().evaluate(input)
        #expect(output.gradLogprob == [0, 0.5])  // -ρ·A·w = -(1)(-1)(1/2)
        #expect(output.loss == 0.5)
    }

    @Test func handFixtureOneToken() {
        var loss = PolicyLoss()
        loss.klBeta = 0.5
        loss.klEstimator = .k3
        // ratio = e^0.1 = 1.10517 (inside the clip range), A = 2, ref - logp = -0.2.
        let input = PolicyLoss.Input(logprobs: [-1.0], oldLogprobs: [-1.1], refLogprobs: [-1.2],
                                     lengths: [1], advantages: [2], stride: 1)
        let out = loss.evaluate(input)
        let ratio = 1.1051709180756477
        let k3 = 0.8187307530779818 + 0.2 - 1  // e^-0.2 - (-0.2) - 1
        #expect(abs(out.loss - (-ratio * 2 + 0.5 * k3)) < 1e-12)
        #expect(abs(out.gradLogprob[0] - (-ratio * 2 + 0.5 * (1 - 0.8187307530779818))) < 1e-12)
        #expect(abs(out.meanKL - k3) < 1e-12 && abs(out.meanRatio - ratio) < 1e-12)
    }

    @Test func clippedTokensHaveNoSurrogateGradient() {
        let loss = PolicyLoss()  // eps 0.2, no KL
        // ratios e^0.5 = 1.65 with A > 0 (high clip) and e^-0.5 = 0.61 with A < 0 (low clip).
        let input = PolicyLoss.Input(logprobs: [0, 0], oldLogprobs: [-0.5, 0.5], lengths: [1, 1],
                                     advantages: [1, -1], stride: 1)
        let out = loss.evaluate(input)
        #expect(out.gradLogprob == [0, 0])
        #expect(out.clipFractionHigh == 0.5 && out.clipFractionLow == 0.5)
        #expect(abs(out.loss - (-(1.2 * 1) + -(0.8 * -1)) / 2) < 1e-12)
    }

    @Test func dualClipBoundsNegativeAdvantageLoss() {
        var loss = PolicyLoss()
        loss.dualClip = 3
        // ratio e^2 = 7.39 > c with A = -1: objective = c·A, gradient 0.
        let input = PolicyLoss.Input(logprobs: [0], oldLogprobs: [-2], lengths: [1], advantages: [-1], stride: 1)
        let out = loss.evaluate(input)
        #expect(out.loss == 3 && out.gradLogprob == [0] && out.dualClipFraction == 1)
    }

    @Test func aggregationWeights() {
        // Two rows, lengths 1 and 3, ratio 1, A = 1: every token loss is -1.
        let input = PolicyLoss.Input(logprobs: [0, 0, 0, 0, 0, 0], oldLogprobs: [0, 0, 0, 0, 0, 0],
                                     lengths: [1, 3], advantages: [1, 1], stride: 3)
        var loss = PolicyLoss()
        loss.aggregation = .tokenMean
        #expect(loss.evaluate(input).gradLogprob == [-0.25, 0, 0, -0.25, -0.25, -0.25])
        loss.aggregation = .seqMeanTokenMean
        let sixth = 1.0 / 6
        let perSequence: [Double] = [-0.5, 0, 0, -sixth, -sixth, -sixth]
        #expect(loss.evaluate(input).gradLogprob == perSequence)
        loss.aggregation = .seqMeanTokenSumNorm
        let normalised: [Double] = [-sixth, 0, 0, -sixth, -sixth, -sixth]
        #expect(loss.evaluate(input).gradLogprob == normalised)
        loss.constantLength = 4
        #expect(loss.evaluate(input).loss == -(1.0 / 4 + 3.0 / 4) / 2)
    }

    @Test func emptyBatchAndEmptyRows() {
        let empty = PolicyLoss().evaluate(PolicyLoss.Input(logprobs: [], oldLogprobs: [], lengths: [],
                                                           advantages: [], stride: 4))
        #expect(empty.loss == 0 && empty.tokens == 0 && empty.gradLogprob.isEmpty)
        let zeroLength = PolicyLoss().evaluate(PolicyLoss.Input(logprobs: [1, 1], oldLogprobs: [1, 1],
                                                                lengths: [0], advantages: [5], stride: 2))
        #expect(zeroLength.loss == 0 && zeroLength.gradLogprob == [0, 0])
    }
}
