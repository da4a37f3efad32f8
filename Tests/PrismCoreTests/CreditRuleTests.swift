import PrismCore
import Testing

/// SGPO's credit rules (Documentation/Math.md, "Credit rules"): which tokens
/// of a re-rewarded answer its advantage reaches, and the exact gradient of
/// the per-token objective under each.
@Suite("Credit rules")
struct CreditRuleTests {
    /// The guard the issue asked for: no rule but `sequence` ever puts a
    /// positive advantage on a token at or after the first error, `prefix`
    /// puts nothing there at all, and `split` puts a negative advantage only
    /// there.
    @Test func noRuleCreditsATokenAfterTheFirstError() {
        var rng = RandomState(seed: 5)
        for _ in 0..<2000 {
            let tokens = Int(rng.uniform() * 12)
            let e = Int(rng.uniform() * Double(tokens + 3)) - 1  // -1 and past the end are clamped
            let a = (rng.uniform() - 0.5) * 4
            let sequence = CreditRule.sequence.tokenAdvantages(advantage: a, tokens: tokens, firstErrorToken: e)
            let prefix = CreditRule.prefix.tokenAdvantages(advantage: a, tokens: tokens, firstErrorToken: e)
            let split = CreditRule.split.tokenAdvantages(advantage: a, tokens: tokens, firstErrorToken: e)
            #expect(sequence == Array(repeating: a, count: tokens))
            let first = min(max(e, 0), tokens)
            for t in 0..<tokens {
                let beforeError = t < first
                #expect(prefix[t] == (beforeError ? a : 0), "prefix token \(t), e \(e), A \(a)")
                #expect(split[t] == (beforeError == (a > 0) ? a : 0), "split token \(t), e \(e), A \(a)")
                if !beforeError { #expect(prefix[t] == 0 && split[t] <= 0) }
                if beforeError { #expect(split[t] >= 0) }
            }
        }
        // Not located: every rule falls back to the whole answer.
        for rule in CreditRule.allCases {
            #expect(rule.tokenAdvantages(advantage: -0.5, tokens: 4, firstErrorToken: nil) == [-0.5, -0.5, -0.5, -0.5])
        }
    }

    /// The gradient of the token objective with each rule's per-token
    /// advantages, against fourth-order finite differences, and exactly 0
    /// on every token the rule does not credit (no KL, so nothing else acts
    /// on them).
    @Test func gradientOfEachRuleMatchesFiniteDifferences() {
        var rng = RandomState(seed: 17)
        var worst = 0.0
        for rule in CreditRule.allCases {
            for aggregation in LossAggregation.allCases {
                var loss = PolicyLoss()
                loss.aggregation = aggregation
                loss.klBeta = 0
                var input = PolicyLossTests.randomInput(&rng, rows: 4, stride: 9, loss: loss)
                let errors = (0..<4).map { _ in Int(rng.uniform() * 10) }
                input.tokenAdvantages = (0..<4).flatMap { r in
                    rule.tokenAdvantages(advantage: input.advantages[r], tokens: input.stride, firstErrorToken: errors[r])
                }
                let output = loss.evaluate(input)
                for t in input.logprobs.indices {
                    let (r, j) = (t / input.stride, t % input.stride)
                    let numeric = PolicyLossTests.numericGradient(loss, input, at: t)
                    let analytic = output.gradLogprob[t]
                    let error = abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-4)
                    worst = max(worst, error)
                    #expect(error < 1e-6, "\(rule) \(aggregation) token \(t): \(analytic) vs \(numeric)")
                    if j < input.lengths[r], input.tokenAdvantages![t] == 0 {
                        #expect(analytic == 0, "\(rule): token \(t) has no credit but gradient \(analytic)")
                    }
                }
            }
        }
        #expect(worst < 1e-6)
    }

    /// SGPO with `prefix` and `split` on a batch of an all-negative group
    /// (diversified) and a mixed one (not): per-token advantages where the
    /// rule applies, the response's advantage broadcast elsewhere, and
    /// unlocated errors counted and given sequence credit.
    @Test func sgpoAppliesTheRuleOnlyToReRewardedAnswers() throws {
        let negative = GroupRewards(rewards: [0, 0, 0, 0], correct: [false, false, false, false])
        let mixed = GroupRewards(rewards: [1, 0], correct: [true, false])
        // Answer 0 fails at step 0 (token 0), answer 1 at step 2 (token 3), answer 2 is
        // unlocated, answer 3 has no error the judge can see.
        let feedback = Feedback(scores: [0, 0.75, 0.5, 1], firstErrors: [0, 2, 1, nil])
        let groups = [
            StrategyGroup(rewards: negative, feedback: feedback, tokenCounts: [4, 6, 5, 3], firstErrorTokens: [0, 3, nil, nil]),
            StrategyGroup(rewards: mixed, tokenCounts: [2, 3]),
        ]
        let sequence = try StrategyDescriptor.sgpo.strategy().advantages(for: groups)
        #expect(sequence.tokenAdvantages == nil && sequence.unlocatedResponses == 0)
        for rule in ["prefix", "split"] {
            let batch = try StrategyDescriptor.sgpo.strategy(["credit": rule]).advantages(for: groups)
            #expect(batch.advantages == sequence.advantages, "the rule changes where credit goes, not how much")
            let a = batch.advantages[0]
            #expect(a[0] < 0 && a[1] > 0 && a[3] > 0)
            let perToken = try #require(batch.tokenAdvantages)
            #expect(perToken[0][0] == (rule == "prefix" ? [0, 0, 0, 0] : [a[0], a[0], a[0], a[0]]))
            #expect(perToken[0][1] == [a[1], a[1], a[1], 0, 0, 0])
            #expect(perToken[0][2] == Array(repeating: a[2], count: 5))
            #expect(perToken[0][3] == Array(repeating: a[3], count: 3))
            #expect(perToken[1] == [[batch.advantages[1][0], batch.advantages[1][0]], Array(repeating: batch.advantages[1][1], count: 3)])
            #expect(batch.unlocatedResponses == 1)
        }
    }
}
