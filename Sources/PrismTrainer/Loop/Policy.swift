import Foundation
import PrismCore

/// The version of the Prism runtime.
public enum PrismVersion {
    public static let string = "0.2.0"
}

/// One sampled completion.
public struct Completion: Sendable, Equatable {
    /// The prompt's token ids as the model read them (``Policy/promptTokens(_:)``).
    public var promptTokens: [Int32]
    /// The generated ids, including the final EOS when one was produced.
    public var tokens: [Int32]
    /// The text of the generated ids (special tokens omitted).
    public var text: String
    /// Whether generation ended with EOS (rather than the length limit).
    public var finished: Bool
    /// Per generated id, its log-probability under the policy that sampled
    /// it, at the policy's temperature, from the decoding logits (when
    /// generation was asked to record them): the old log-probs of an update
    /// with μ = 1, so no forward pass is spent on them.
    public var logprobs: [Float]?

    public init(promptTokens: [Int32], tokens: [Int32], text: String, finished: Bool, logprobs: [Float]? = nil) {
        self.promptTokens = promptTokens
        self.tokens = tokens
        self.text = text
        self.finished = finished
        self.logprobs = logprobs
    }

    /// The prompt's ids, then the completion's.
    public var sequence: [Int32] { promptTokens + tokens }
}

/// A backend and a sampler that generate together.
public final class Policy {
    public let backend: any ComputeBackend
    public let sampler: any Sampler
    public let info: BackendInfo
    /// Logits are divided by this in log-probs and gradients; it must equal
    /// the sampler's temperature so training sees what was sampled.
    public let temperature: Float
    /// Asked between decoding steps and before each plugin call of a step:
    /// true stops the step with ``Cancelled`` (the run then ends at its last
    /// completed step).
    public var shouldStop: () -> Bool = { false }

    public init(backend: any ComputeBackend, sampler: any Sampler, temperature: Float) throws {
        self.backend = backend
        self.sampler = sampler
        self.info = try backend.info()
        self.temperature = temperature
    }

    /// The backend's own prompt wrapping (a chat template) when it has one,
    /// else `[bos] + tokenize(prompt)`.
    public func promptTokens(_ prompt: String) throws -> [Int32] {
        if let wrapped = try backend.tokenizePrompt(prompt) { return wrapped }
        return (info.bosToken.map { [Int32($0)] } ?? []) + (try backend.tokenize(prompt))
    }

    /// Samples `count` completions of each prompt (rows grouped by prompt),
    /// at most `maxNewTokens` each and never past the model's maximum length.
    /// With `recordLogprobs`, each completion carries its ids' log-probs
    /// (``Completion/logprobs``).
    /// - Returns: `[prompts][count]`.
    public func generate(_ prompts: [String], count: Int, maxNewTokens: Int, recordLogprobs: Bool = false,
                         rng: inout RandomState) throws -> [[Completion]]
    {
        guard !prompts.isEmpty, count > 0 else { return prompts.map { _ in [] } }
        let encoded = try prompts.map(promptTokens)
        let rows = encoded.flatMap { Array(repeating: $0, count: count) }
        let longest = rows.map(\.count).max() ?? 0
        let steps = min(maxNewTokens, info.maxSequenceLength - longest)
        guard steps > 0 else {
            throw TrainerError("a prompt of \(longest) tokens leaves no room to generate (max_len \(info.maxSequenceLength))")
        }
        let eos = info.eosToken.map(Int32.init)
        let pad = Int32(info.padToken ?? 0)
        var generated = Array(repeating: [Int32](), count: rows.count)
        var logprobs = Array(repeating: [Float](), count: recordLogprobs ? rows.count : 0)
        var done = Array(repeating: false, count: rows.count)
        var logits = try backend.beginDecoding(TokenBatch(sequences: rows, pad: pad))
        for step in 0..<steps {
            try checkStop("generation")
            let next = try sampler.sample(logits: logits, rows: rows.count, vocab: info.vocabSize, rng: &rng)
            for (r, token) in next.enumerated() where !done[r] {
                generated[r].append(Int32(token))
                if recordLogprobs {
                    logprobs[r].append(Self.logprob(of: token, in: logits, row: r, vocab: info.vocabSize, temperature: temperature))
                }
                if Int32(token) == eos { done[r] = true }
            }
            if done.allSatisfy({ $0 }) || step == steps - 1 { break }
            // Rows that finished are decoded no more where the backend can
            // leave them out (ABI 1.6); they keep their last logits, so the
            // sampler still draws for every row and the random stream is
            // the same either way (Decisions #56).
            let going = rows.indices.filter { !done[$0] }
            if going.count < rows.count,
               let part = try backend.decodeStep(rows: going, tokens: going.map { Int32(next[$0]) })
            {
                let vocab = info.vocabSize
                guard part.count == going.count * vocab else {
                    throw TrainerError("decode_step_rows returned \(part.count) logits for \(going.count) rows of \(vocab)")
                }
                for (i, r) in going.enumerated() {
                    logits.replaceSubrange((r * vocab)..<((r + 1) * vocab), with: part[(i * vocab)..<((i + 1) * vocab)])
                }
            } else {
                logits = try backend.decodeStep(next.enumerated().map { done[$0.offset] ? pad : Int32($0.element) })
            }
        }
        var out: [[Completion]] = []
        for p in prompts.indices {
            out.append(try (0..<count).map { g in
                let r = p * count + g
                return Completion(promptTokens: rows[r], tokens: generated[r],
                                  text: try backend.detokenize(generated[r]), finished: done[r],
                                  logprobs: recordLogprobs ? logprobs[r] : nil)
            })
        }
        return out
    }

    /// log softmax(logits[row] / temperature)[token], summed in Double as
    /// the backends do.
    static func logprob(of token: Int, in logits: [Float], row: Int, vocab: Int, temperature: Float) -> Float {
        let z = logits[(row * vocab)..<((row + 1) * vocab)]
        var top = -Float.infinity
        for value in z { top = max(top, value / temperature) }
        var sum = 0.0
        for value in z { sum += Foundation.exp(Double(value / temperature - top)) }
        return Float(Double(z[row * vocab + token] / temperature - top) - Foundation.log(sum))
    }
}

extension Policy {
    /// Throws ``Cancelled`` naming `call` when the run was asked to stop.
    public func checkStop(_ call: String) throws {
        if shouldStop() { throw Cancelled(call) }
    }

    /// The index of the token of `tokens` (a completion) in which UTF-8 byte
    /// `offset` of its text lies: the smallest `t` whose prefix
    /// `tokens[...t]` detokenizes to more than `offset` bytes. At the end of
    /// the text (a step the completion is missing) it is the first token
    /// that adds no text, e.g. the end token, or `tokens.count` when there
    /// is none. Binary search: O(log T) detokenize calls.
    public func tokenIndex(ofByte offset: Int, in tokens: [Int32]) throws -> Int {
        var lengths: [Int: Int] = [0: 0]
        func prefixLength(_ t: Int) throws -> Int {
            if let known = lengths[t] { return known }
            let length = try backend.detokenize(Array(tokens[..<t])).utf8.count
            lengths[t] = length
            return length
        }
        func first(in range: Range<Int>, where holds: (Int) throws -> Bool) rethrows -> Int {
            var low = range.lowerBound, high = range.upperBound
            while low < high {
                let mid = (low + high) / 2
                if try holds(mid) { high = mid } else { low = mid + 1 }
            }
            return low
        }
        let containing = try first(in: 0..<tokens.count) { try prefixLength($0 + 1) > offset }
        if containing < tokens.count { return containing }
        return try first(in: 0..<(tokens.count + 1)) { try prefixLength($0) >= offset }
    }
}

/// A training run could not go on; the description says why.
public struct TrainerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
