/// Estimators of KL(policy ‖ reference) per token, from d = logp_ref - logp
/// (Schulman's k1, k2, k3).
public enum KLEstimator: String, Sendable, CaseIterable {
    /// `k1 = -d = logp - logp_ref`; d/dlogp = 1.
    case k1
    /// `k2 = d² / 2`; d/dlogp = -d.
    case k2
    /// `k3 = e^d - d - 1` (non-negative, unbiased); d/dlogp = 1 - e^d.
    case k3

    /// The estimate and its derivative with respect to logp.
    @inlinable
    public func value(logp: Double, ref: Double) -> (kl: Double, dLogp: Double) {
        let d = ref - logp
        switch self {
        case .k1: return (-d, 1)
        case .k2: return (0.5 * d * d, -d)
        case .k3:
            let e = Elementary.exp(d)
            return (e - d - 1, 1 - e)
        }
    }
}

/// How per-token losses are averaged into the scalar loss.
public enum LossAggregation: String, Sendable, CaseIterable {
    /// Mean over every completion token of the batch (DAPO).
    case tokenMean = "token-mean"
    /// Mean over sequences of each sequence's token mean (original GRPO).
    case seqMeanTokenMean = "seq-mean-token-mean"
    /// Mean over sequences of each sequence's token sum divided by a constant
    /// length (Dr. GRPO; the constant is the maximum completion length).
    case seqMeanTokenSumNorm = "seq-mean-token-sum-norm"
}

/// The clipped-surrogate policy loss with optional KL to a reference.
///
/// Per token t of response i, with ρ = exp(logp - logp_old) and advantage A
/// (the response's A_i, or the token's own A_it when per-token advantages
/// are given):
///
///     obj = min(ρ·A, clip(ρ, 1 - ε_low, 1 + ε_high)·A)
///     obj = max(obj, c·A)            when A < 0 and dual clip c is set
///     ℓ   = -obj + kl_beta · KL_k(logp, logp_ref)
///
/// and the loss is the aggregation of ℓ. `grad_logprob[i][t]` = ∂loss/∂logp[i][t]:
/// `-ρ·A·w` where the unclipped branch is active, 0 where a clip is, plus
/// `kl_beta·∂KL/∂logp·w`, with w the token's aggregation weight.
public struct PolicyLoss: Sendable, Equatable {
    public var epsilonLow: Double = 0.2
    public var epsilonHigh: Double = 0.2
    /// Dual-clip constant c (> 1) bounding the loss of negative-advantage
    /// tokens with huge ratios; nil = off.
    public var dualClip: Double? = nil
    /// Weight of the KL term in the loss; 0 = no KL (then no reference needed).
    public var klBeta: Double = 0
    public var klEstimator: KLEstimator = .k3
    public var aggregation: LossAggregation = .tokenMean
    /// The constant length of `seq-mean-token-sum-norm`; nil = the longest
    /// completion in the batch.
    public var constantLength: Int? = nil

    public init() {}

    /// The step's per-token inputs, `[rows][stride]` row-major; row i's
    /// completion tokens are positions `0..<lengths[i]`.
    public struct Input: Sendable {
        public var logprobs: [Double]
        public var oldLogprobs: [Double]
        /// Reference log-probs; required when `klBeta != 0`.
        public var refLogprobs: [Double]?
        public var lengths: [Int]
        /// `[rows]`, one advantage per response.
        public var advantages: [Double]
        /// `[rows][stride]` per-token advantages; nil = each row's advantage
        /// for every one of its tokens (the per-response ones broadcast).
        public var tokenAdvantages: [Double]?
        public var stride: Int

        public init(logprobs: [Double], oldLogprobs: [Double], refLogprobs: [Double]? = nil,
                    lengths: [Int], advantages: [Double], tokenAdvantages: [Double]? = nil, stride: Int) {
            precondition(logprobs.count == lengths.count * stride && oldLogprobs.count == logprobs.count,
                         "logprobs must be [rows][stride]")
            precondition(refLogprobs == nil || refLogprobs!.count == logprobs.count, "refLogprobs must be [rows][stride]")
            precondition(advantages.count == lengths.count, "advantages must be [rows]")
            precondition(tokenAdvantages == nil || tokenAdvantages!.count == logprobs.count,
                         "tokenAdvantages must be [rows][stride]")
            precondition(lengths.allSatisfy { $0 >= 0 && $0 <= stride }, "lengths must be in 0...stride")
            self.logprobs = logprobs
            self.oldLogprobs = oldLogprobs
            self.refLogprobs = refLogprobs
            self.lengths = lengths
            self.advantages = advantages
            self.tokenAdvantages = tokenAdvantages
            self.stride = stride
        }
    }

    /// The scalar loss, its gradient and the step's statistics.
    public struct Output: Sendable {
        public var loss: Double
        /// `[rows][stride]`; 0 outside each row's completion.
        public var gradLogprob: [Double]
        /// Share of tokens with A < 0 and ρ < 1 - ε_low (TRL's `clip_ratio/low`).
        public var clipFractionLow: Double
        /// Share of tokens with A > 0 and ρ > 1 + ε_high (`clip_ratio/high`).
        public var clipFractionHigh: Double
        /// Share of tokens cut by the dual clip.
        public var dualClipFraction: Double
        /// Mean KL estimate per token (computed whenever reference log-probs are given).
        public var meanKL: Double
        /// Mean ratio ρ per token.
        public var meanRatio: Double
        /// Share of tokens whose gradient a clip (low, high or dual) cut.
        public var clipFraction: Double { clipFractionLow + clipFractionHigh + dualClipFraction }
        /// Mean per token of `(ρ - 1) - log ρ`, an estimate of KL(old ‖ policy)
        /// (k3): 0 on the first pass over a batch, growing with each update.
        public var approxKL: Double
        /// Completion tokens in the batch.
        public var tokens: Int
    }

    /// Evaluates the loss and ∂loss/∂logp.
    public func evaluate(_ input: Input) -> Output {
        precondition(klBeta == 0 || input.refLogprobs != nil, "klBeta != 0 needs reference log-probs")
        precondition(dualClip.map { $0 > 1 } ?? true, "the dual-clip constant must be > 1")
        let rows = input.lengths.count
        let stride = input.stride
        let totalTokens = input.lengths.reduce(0, +)
        let sequences = input.lengths.filter { $0 > 0 }.count
        let constant = Double(constantLength ?? (input.lengths.max() ?? 0))
        var grad = [Double](repeating: 0, count: rows * stride)
        var loss = 0.0
        var clippedLow = 0, clippedHigh = 0, dualClipped = 0
        var klSum = 0.0, ratioSum = 0.0, approxKLSum = 0.0
        let lowBound = 1 - epsilonLow, highBound = 1 + epsilonHigh
        let c = dualClip ?? .infinity
        for i in 0..<rows {
            let n = input.lengths[i]
            guard n > 0 else { continue }
            let weight: Double
            switch aggregation {
            case .tokenMean: weight = 1 / Double(totalTokens)
            case .seqMeanTokenMean: weight = 1 / (Double(sequences) * Double(n))
            case .seqMeanTokenSumNorm: weight = 1 / (Double(sequences) * constant)
            }
            for t in (i * stride)..<(i * stride + n) {
                let a = input.tokenAdvantages?[t] ?? input.advantages[i]
                let logp = input.logprobs[t]
                let logRatio = logp - input.oldLogprobs[t]
                let ratio = Elementary.exp(logRatio)
                ratioSum += ratio
                approxKLSum += ratio - 1 - logRatio
                // The surrogate and d(obj)/d(logp) on its active branch.
                var objective = ratio * a
                var dObjective = ratio * a
                if a > 0, ratio > highBound {
                    objective = highBound * a
                    dObjective = 0
                    clippedHigh += 1
                } else if a < 0 {
                    if ratio < lowBound {
                        objective = lowBound * a
                        dObjective = 0
                        clippedLow += 1
                    } else if ratio > c {
                        objective = c * a
                        dObjective = 0
                        dualClipped += 1
                    }
                }
                var tokenLoss = -objective
                var dLoss = -dObjective
                if let ref = input.refLogprobs {
                    let (kl, dKL) = klEstimator.value(logp: logp, ref: ref[t])
                    klSum += kl
                    tokenLoss += klBeta * kl
                    dLoss += klBeta * dKL
                }
                loss += weight * tokenLoss
                grad[t] = weight * dLoss
            }
        }
        let denominator = Double(max(totalTokens, 1))
        return Output(
            loss: loss, gradLogprob: grad,
            clipFractionLow: Double(clippedLow) / denominator,
            clipFractionHigh: Double(clippedHigh) / denominator,
            dualClipFraction: Double(dualClipped) / denominator,
            meanKL: klSum / denominator, meanRatio: ratioSum / denominator,
            approxKL: approxKLSum / denominator, tokens: totalTokens)
    }
}
