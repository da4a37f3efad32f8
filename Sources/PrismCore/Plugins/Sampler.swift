/// Picks next tokens from logits (the ABI's `prism.sampler/1`).
public protocol Sampler: AnyObject {
    /// Picks one token per row.
    /// - Parameters:
    ///   - logits: `[rows][vocab]`, row-major, unnormalised log-probabilities.
    ///   - rows: number of rows; `logits.count == rows * vocab`.
    ///   - vocab: vocabulary size.
    ///   - rng: the run's random state, advanced in place.
    /// - Returns: `[rows]` token ids in `0..<vocab`.
    func sample(logits: [Float], rows: Int, vocab: Int, rng: inout RandomState) throws -> [Int]
}
