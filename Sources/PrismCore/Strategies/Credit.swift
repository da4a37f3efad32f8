/// Which tokens of a re-rewarded (diversified) response its advantage
/// reaches. The judge says where the response's first wrong step begins;
/// the host maps that to `e`, the index of the first completion token that
/// belongs to it (Documentation/Math.md, "Credit rules").
public enum CreditRule: String, Sendable, CaseIterable {
    /// Every token gets the response's advantage (the paper; plain GRPO).
    case sequence
    /// Only the tokens before the first error: `A` for `t < e`, 0 after.
    case prefix
    /// A positive advantage reaches only the correct prefix (`t < e`), a
    /// negative one only the first wrong step and what follows (`t >= e`).
    case split

    /// The per-token advantages of one response.
    ///
    /// - Parameters:
    ///   - advantage: the response's advantage `A`.
    ///   - tokens: its length `T` in tokens.
    ///   - firstErrorToken: `e`, clamped to `0...T`; nil = no error located,
    ///     every token gets `A` whatever the rule.
    /// - Returns: `[T]` advantages.
    public func tokenAdvantages(advantage a: Double, tokens: Int, firstErrorToken: Int?) -> [Double] {
        guard let located = firstErrorToken, self != .sequence else { return Array(repeating: a, count: tokens) }
        let e = min(max(located, 0), tokens)
        return (0..<tokens).map { t in
            switch self {
            case .sequence: a
            case .prefix: t < e ? a : 0
            case .split: (a > 0) == (t < e) ? a : 0
            }
        }
    }
}
