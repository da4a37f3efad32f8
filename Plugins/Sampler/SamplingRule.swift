// Token sampling: temperature, top-k, top-p, min-p and greedy, composable,
// on the host's random state, over one row of logits.
#if canImport(Glibc)
import Glibc
#endif

/// The sampler's settings (the plugin's JSON config).
struct SamplingRule: Equatable {
    /// Logits are divided by this; 0 means greedy.
    var temperature: Double = 1
    /// Keep only the k most likely tokens; 0 = off.
    var topK = 0
    /// Keep the smallest set of most likely tokens whose mass reaches p; 1 = off.
    var topP = 1.0
    /// Keep tokens with probability >= min_p · (the largest probability); 0 = off.
    var minP = 0.0
    /// Always take the most likely token (lowest id on ties).
    var greedy = false

    /// The renormalised distribution a row is sampled from, `[vocab]`
    /// (zeros for excluded tokens): temperature, then top-k, then top-p, then
    /// min-p. Nil when no logit is finite. NaN logits count as -inf.
    func distribution(_ logits: UnsafeBufferPointer<Float>) -> [Double]? {
        var best = -Double.infinity
        for x in logits where !x.isNaN { best = max(best, Double(x)) }
        guard best > -.infinity else { return nil }
        let vocab = logits.count
        if greedy || temperature == 0 || best == .infinity {
            let index = logits.firstIndex { Double($0) == best }!
            var p = [Double](repeating: 0, count: vocab)
            p[index] = 1
            return p
        }
        var p = logits.map { x -> Double in
            x.isNaN || x == -.infinity ? 0 : exp((Double(x) - best) / temperature)
        }
        // Tokens by decreasing probability, ties by id (a stable order).
        let order = topK > 0 || topP < 1
            ? (0..<vocab).sorted { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) } : []
        if topK > 0, topK < vocab {
            for index in order[topK...] { p[index] = 0 }
        }
        if topP < 1 {
            let total = p.reduce(0, +)
            var mass = 0.0
            for index in order where p[index] > 0 {
                if mass >= topP * total {
                    p[index] = 0
                } else {
                    mass += p[index]
                }
            }
        }
        if minP > 0 {
            let top = p.max() ?? 0
            for index in p.indices where p[index] < minP * top { p[index] = 0 }
        }
        let total = p.reduce(0, +)
        return p.map { $0 / total }
    }

    /// Draws from `distribution` with one uniform u in [0, 1): the first
    /// token (in id order) whose cumulative probability exceeds u.
    static func draw(_ distribution: [Double], uniform u: Double) -> Int {
        var cumulative = 0.0
        var last = 0
        for (index, p) in distribution.enumerated() where p > 0 {
            cumulative += p
            last = index
            if u < cumulative { return index }
        }
        return last  // rounding left u above the total: the last possible token
    }
}
