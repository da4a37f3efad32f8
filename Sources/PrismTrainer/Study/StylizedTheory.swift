import PrismCore

/// The expected update of the stylized model, exactly, by enumerating every
/// outcome of a group (Documentation/EXPERIMENTS.md, "Theory check").
///
/// A response of the n-step model ends in one of n + 1 outcomes: "failed at
/// step j" (j = 0..<n, after j successes) or "correct" (j = n), with
/// probabilities `q_j = p_0 ... p_{j-1} (1 - p_j)` and `q_n = p_0 ... p_{n-1}`,
/// where `p_k = sigmoid(theta_k)`. Its score function is
/// `d log pi / d theta_k = 1 - p_k` for k < j, `-p_j` for k = j < n, 0 after.
/// A group of G responses is a composition `c` of G over the outcomes,
/// multinomially distributed. GRPO gives every response of a group with a
/// correct one reward 1 or 0; SGPO replaces the 0s of an all-negative group
/// by `map(j / n)` (the judge's RTS). With the group's mean m and
/// Bessel-corrected std s, `A_j = (r_j - m) / (s + eps)` (0 when all rewards
/// are equal), and the expected update direction per group is
/// `E[(1/G) sum_i A_i grad log pi(y_i)] = sum_c P(c) (1/G) sum_j c_j A_j score_j`.
/// A credit rule changes which tokens of a re-rewarded response the
/// advantage reaches, so which terms of `score_j` count: for "failed at step
/// j" the first error is token j, `prefix` keeps the terms k < j, `split`
/// keeps them when `A_j > 0` and only the term k = j when `A_j < 0`.
public enum StylizedTheory {
    /// How rewards are set.
    public enum Rule: Sendable {
        case grpo
        /// SGPO in all-negative groups, rewards capped below a correct one's,
        /// with a credit rule.
        case sgpo(RTSMap, maxIncorrectReward: Double = 0.999, credit: CreditRule = .sequence)
    }

    /// `q_j`, j = 0...n (the last is "correct").
    public static func outcomeProbabilities(logits: [Double]) -> [Double] {
        var out: [Double] = []
        var reached = 1.0
        for theta in logits {
            let p = Elementary.sigmoid(theta)
            out.append(reached * (1 - p))
            reached *= p
        }
        return out + [reached]
    }

    /// `d log pi(outcome j) / d theta`.
    public static func score(outcome j: Int, logits: [Double]) -> [Double] {
        logits.indices.map { k in
            let p = Elementary.sigmoid(logits[k])
            return k < j ? 1 - p : k == j ? -p : 0
        }
    }

    /// The expected update direction per group (see the type's comment).
    public static func expectedUpdate(logits: [Double], groupSize g: Int, rule: Rule,
                                      epsilon: Double = AdvantageEstimator.defaultEpsilon) -> [Double] {
        let n = logits.count
        let q = outcomeProbabilities(logits: logits)
        let scores = (0...n).map { score(outcome: $0, logits: logits) }
        var total = Array(repeating: 0.0, count: n)
        var counts = Array(repeating: 0, count: n + 1)
        // log G! once; each composition's probability from log-factorials.
        let logFactorial = (0...g).map { k in (0..<k).reduce(0.0) { $0 + Elementary.log(Double($1 + 1)) } }
        func visit(_ outcome: Int, _ left: Int) {
            if outcome == n {
                counts[n] = left
                accumulate()
                return
            }
            for c in 0...left {
                counts[outcome] = c
                visit(outcome + 1, left - c)
            }
        }
        func accumulate() {
            var logP = logFactorial[g]
            for j in 0...n {
                guard counts[j] > 0 else { continue }
                guard q[j] > 0 else { return }
                logP += Double(counts[j]) * Elementary.log(q[j]) - logFactorial[counts[j]]
            }
            let probability = Elementary.exp(logP)
            let allNegative = counts[n] == 0
            let rewards = (0...n).map { j -> Double in
                if j == n { return 1 }
                if case .sgpo(let map, let cap, _) = rule, allNegative {
                    return min(map.reward(rts: Double(j) / Double(n)), cap)
                }
                return 0
            }
            let present = (0...n).filter { counts[$0] > 0 }
            guard present.contains(where: { rewards[$0] != rewards[present[0]] }) else { return }  // all equal: A = 0
            let mean = present.reduce(0.0) { $0 + Double(counts[$1]) * rewards[$1] } / Double(g)
            let variance = present.reduce(0.0) { $0 + Double(counts[$1]) * (rewards[$1] - mean) * (rewards[$1] - mean) }
                / Double(g - 1)
            let divisor = variance.squareRoot() + epsilon
            var credit = CreditRule.sequence
            if case .sgpo(_, _, let rule) = rule, allNegative { credit = rule }
            for j in present {
                let advantage = (rewards[j] - mean) / divisor
                let weight = probability * Double(counts[j]) / Double(g) * advantage
                // Token k of "failed at step j" is step k; its credit under the rule.
                let credited = credit.tokenAdvantages(advantage: advantage, tokens: n, firstErrorToken: j < n ? j : nil)
                for k in 0..<n where credited[k] != 0 { total[k] += weight * scores[j][k] }
            }
        }
        guard g >= 2 else { return total }
        visit(0, g)
        return total
    }
}
