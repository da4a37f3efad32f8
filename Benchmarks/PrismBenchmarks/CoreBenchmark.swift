import PrismCore

/// Advantages plus `grad_logprob` for a batch of `groups × G` responses of
/// `tokens` completion tokens each, on one core. Target: at least 20 million
/// tokens per second at 64 × 16 × 256.
public struct CoreBenchmark {
    public var groups: Int
    public var groupSize: Int
    public var tokens: Int

    public init(groups: Int = 64, groupSize: Int = 16, tokens: Int = 256) {
        self.groups = groups
        self.groupSize = groupSize
        self.tokens = tokens
    }

    public func run() -> String {
        var rng = RandomState(seed: 1)
        let rows = groups * groupSize
        // Mostly all-negative groups, as early in training, so SGPO works.
        let batch = (0..<groups).map { g in
            let correct = (0..<groupSize).map { _ in g % 4 == 0 && rng.uniform() < 0.3 }
            return GroupRewards(rewards: correct.map { $0 ? 1 : 0 }, correct: correct)
        }
        let feedback: [Feedback?] = batch.map { group in
            group.kind == .allNegative
                ? Feedback(scores: (0..<groupSize).map { _ in (rng.uniform() * 8).rounded() / 8 },
                           firstErrors: Array(repeating: 0, count: groupSize))
                : nil
        }
        let logp = (0..<(rows * tokens)).map { _ in -3 * rng.uniform() }
        let old = logp.map { $0 + (rng.uniform() - 0.5) * 0.4 }
        let ref = logp.map { $0 + (rng.uniform() - 0.5) * 0.2 }
        let strategy = Strategy(diversification: Diversification())  // the sgpo built-in
        var loss = PolicyLoss()
        loss.klBeta = 0.04
        loss.epsilonHigh = 0.28

        var lossValue = 0.0
        let perToken = bestTime(units: rows * tokens) {
            let scored = strategy.advantages(groups: batch, feedback: feedback)
            let input = PolicyLoss.Input(
                logprobs: logp, oldLogprobs: old, refLogprobs: ref,
                lengths: Array(repeating: tokens, count: rows), advantages: Array(scored.advantages.joined()),
                stride: tokens)
            lossValue = loss.evaluate(input).loss
        }
        blackHole(lossValue)
        let rate = 1e9 / perToken
        return """
            Core math: advantages (sgpo) + grad_logprob (clip, k3 KL), \(groups) groups x G=\(groupSize) x \(tokens) tokens, one core
            \(String(Int(rate / 1e5)).paddedTo(6, point: true)) M tokens/s (\(String(Int(perToken * 10)).paddedTo(5, point: true)) ns/token); target >= 20 M tokens/s (\(rate >= 20e6 ? "met" : "MISSED"))
            """
    }
}
