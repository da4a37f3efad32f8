/// Facts about a policy model.
public struct BackendInfo: Sendable, Equatable {
    public var vocabSize: Int
    public var bosToken: Int?
    public var eosToken: Int?
    public var padToken: Int?
    public var maxSequenceLength: Int
    public var parameterCount: Int

    public init(
        vocabSize: Int, bosToken: Int?, eosToken: Int?, padToken: Int?,
        maxSequenceLength: Int, parameterCount: Int
    ) {
        self.vocabSize = vocabSize
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.padToken = padToken
        self.maxSequenceLength = maxSequenceLength
        self.parameterCount = parameterCount
    }
}

/// A batch of token sequences stored in rows of `stride` tokens.
public struct TokenBatch: Sendable, Equatable {
    /// `[rows][stride]`, row-major; entries past a row's length are padding.
    public var tokens: [Int32]
    /// `[rows]`, each `<= stride`.
    public var lengths: [Int]
    public var stride: Int
    public var rows: Int { lengths.count }

    public init(tokens: [Int32], lengths: [Int], stride: Int) {
        precondition(tokens.count == lengths.count * stride, "tokens must be [rows][stride]")
        self.tokens = tokens
        self.lengths = lengths
        self.stride = stride
    }

    /// Packs sequences into rows padded with `pad`.
    public init(sequences: [[Int32]], pad: Int32 = 0) {
        let stride = sequences.map(\.count).max() ?? 0
        var tokens = [Int32](repeating: pad, count: sequences.count * stride)
        for (r, sequence) in sequences.enumerated() {
            for (t, token) in sequence.enumerated() { tokens[r * stride + t] = token }
        }
        self.init(tokens: tokens, lengths: sequences.map(\.count), stride: stride)
    }
}

/// Which weights to evaluate.
public enum ModelKind: Int32, Sendable {
    case policy = 0
    case reference = 1
}

/// AdamW hyper-parameters for one optimizer step.
public struct OptimizerStep: Sendable, Equatable {
    public var learningRate: Double
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var epsilon: Double = 1e-8
    public var weightDecay: Double = 0.0
    /// Clip the global gradient norm to this; <= 0 means no clipping.
    public var maxGradNorm: Double = 1.0

    public init(learningRate: Double) { self.learningRate = learningRate }
}

/// The policy model (the ABI's `prism.backend/1`). Calls are never concurrent.
///
/// Log-probabilities follow one convention everywhere: `out[r][t]` is
/// `log p(tokens[r][t] | tokens[r][..<t])` at the given temperature for
/// `1 <= t < lengths[r]`, and 0 elsewhere.
public protocol ComputeBackend: AnyObject {
    func info() throws -> BackendInfo
    func tokenize(_ text: String) throws -> [Int32]
    func detokenize(_ tokens: [Int32]) throws -> String
    /// Starts decoding `prompts`; returns next-token logits `[rows][vocab]`.
    func beginDecoding(_ prompts: TokenBatch) throws -> [Float]
    /// Appends one token per row; returns the next logits `[rows][vocab]`.
    func decodeStep(_ tokens: [Int32]) throws -> [Float]
    /// Per-token log-probs `[rows][stride]` under `model` at `temperature`.
    func logprobs(_ batch: TokenBatch, model: ModelKind, temperature: Float) throws -> [Float]
    /// Accumulates the gradient of `sum grad[r][t] * logprob[r][t]`.
    func backward(_ batch: TokenBatch, temperature: Float, gradLogprobs: [Float]) throws
    /// One AdamW step; returns the global gradient norm before clipping.
    func optimizerStep(_ step: OptimizerStep) throws -> Double
    func zeroGrad() throws
    func snapshotReference() throws
    func save(to path: String) throws
    func load(from path: String) throws
    /// The ids the model reads for a task prompt, with its own wrapping (a
    /// chat template, BOS); nil when the backend has none, and the host then
    /// uses `[bos] + tokenize(text)`.
    func tokenizePrompt(_ text: String) throws -> [Int32]?
    /// One forward pass for both log-probs and backward (ABI 1.5): the
    /// policy's log-probs of `batch`, as ``logprobs(_:model:temperature:)``
    /// gives them, keeping the pass for ``backwardKeptPass(gradLogprobs:)``;
    /// nil when the backend cannot (then use `logprobs` and `backward`).
    func logprobsKeepingPass(_ batch: TokenBatch, temperature: Float) throws -> [Float]?
    /// Accumulates the gradient of `sum grad[r][t] * logprob[r][t]` over
    /// the pass ``logprobsKeepingPass(_:temperature:)`` kept, and releases it.
    func backwardKeptPass(gradLogprobs: [Float]) throws
    /// Decoding for the rows still going (ABI 1.6): appends `tokens[i]` to
    /// row `rows[i]` (strictly increasing) and returns their next logits
    /// `[rows.count][vocab]`. Every row not listed has finished: it is not
    /// computed again and may not be listed later. nil when the backend
    /// cannot (then use ``decodeStep(_:)``, padding the finished rows).
    func decodeStep(rows: [Int], tokens: [Int32]) throws -> [Float]?
}

extension ComputeBackend {
    /// A backend without the kept pass (the host falls back to a second forward).
    public func logprobsKeepingPass(_ batch: TokenBatch, temperature: Float) throws -> [Float]? { nil }
    public func backwardKeptPass(gradLogprobs: [Float]) throws { throw NoKeptPass() }
    /// A backend that decodes every row (the host pads the finished ones).
    public func decodeStep(rows: [Int], tokens: [Int32]) throws -> [Float]? { nil }
}

/// ``ComputeBackend/backwardKeptPass(gradLogprobs:)`` on a backend that kept no pass.
public struct NoKeptPass: Error, CustomStringConvertible, Sendable {
    public var description: String { "backward_kept: the backend kept no pass (logprobsKeepingPass first)" }
    public init() {}
}
