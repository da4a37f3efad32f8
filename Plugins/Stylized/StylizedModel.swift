// The stylized model of multi-step reasoning, as plain Swift (no ABI here).
//
// A response is a chain of n steps. Step k (0-based) is attempted only if
// every earlier step succeeded, and succeeds with probability
// sigmoid(theta[k] / T). The response is correct iff all n steps succeed.
//
// As a token model: "?" starts a problem (the prompt), then one token per
// attempted step, "1" (succeeded) or "0" (failed), then EOS. After a "0", or
// after n "1"s, EOS is certain. The state that decides the next token is the
// number of "1"s since the last "?" and whether the chain has ended, so any
// prefix (a prompt, or prompt + completion) is scored the same way by
// decoding, log-probs and gradients.
import FoundationEssentials
import PluginKit
#if canImport(Glibc)
import Glibc
#endif

/// Token ids of the stylized vocabulary.
enum StylizedToken {
    static let fail: Int32 = 0      // "0"
    static let success: Int32 = 1   // "1"
    static let problem: Int32 = 2   // "?"
    static let eos: Int32 = 3       // end of response (special: not in text)
    static let vocabulary = 4
    static let characters: [Character] = ["0", "1", "?"]
    /// The logit of a token the model never emits. Finite, so log-probs stay
    /// finite and NaN-free; exp() of it is exactly 0 in Float.
    static let impossible: Float = -1e30
}

/// Where a chain stands after a prefix.
struct ChainState: Equatable {
    /// Steps that succeeded since the last "?".
    var successes = 0
    /// A step failed, all steps succeeded, or EOS was seen.
    var ended = false

    mutating func append(_ token: Int32, steps: Int) {
        switch token {
        case StylizedToken.problem: self = ChainState()
        case StylizedToken.success where !ended:
            successes += 1
            if successes >= steps { ended = true }
        default: ended = true  // "0", EOS, or "1" after the end: the chain is over
        }
    }
}

/// The tabular policy: one logit per step, a frozen reference copy, a
/// gradient accumulator and plain SGD.
struct StylizedPolicy {
    var theta: [Double]
    var reference: [Double]
    var gradient: [Double]

    init(initial: [Double]) {
        theta = initial
        reference = initial
        gradient = Array(repeating: 0, count: initial.count)
    }

    var steps: Int { theta.count }

    /// Next-token logits after a prefix, at temperature `T`.
    func logits(_ state: ChainState, weights: [Double], temperature: Float, into out: UnsafeMutablePointer<Float>) {
        for v in 0..<StylizedToken.vocabulary { out[v] = StylizedToken.impossible }
        if state.ended {
            out[Int(StylizedToken.eos)] = 0
        } else {
            out[Int(StylizedToken.fail)] = 0
            out[Int(StylizedToken.success)] = Float(weights[state.successes]) / temperature
        }
    }

    /// log p(token | state) and d log p / d theta[state.successes] (0 when the chain has ended).
    static func logprob(_ token: Int32, _ state: ChainState, weights: [Double], temperature: Float)
        -> (logp: Double, dTheta: Double)
    {
        if state.ended {
            return (token == StylizedToken.eos ? 0 : Double(StylizedToken.impossible), 0)
        }
        let t = Double(temperature)
        let x = weights[state.successes] / t
        let p = 1 / (1 + exp(-x))  // P("1")
        switch token {
        case StylizedToken.success: return (-softplus(-x), (1 - p) / t)
        case StylizedToken.fail: return (-softplus(x), -p / t)
        default: return (Double(StylizedToken.impossible) - softplus(x), -p / t)
        }
    }

    /// log(1 + e^x) without overflow.
    static func softplus(_ x: Double) -> Double {
        x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))
    }

    /// SGD: clip the gradient's norm, step, decay, zero the gradient.
    /// - Returns: the gradient norm before clipping.
    mutating func sgd(learningRate: Double, weightDecay: Double, maxGradNorm: Double) -> Double {
        let norm = sqrt(gradient.reduce(0) { $0 + $1 * $1 })
        let scale = maxGradNorm > 0 && norm > maxGradNorm ? maxGradNorm / norm : 1
        if norm.isFinite {
            for k in theta.indices {
                theta[k] -= learningRate * (scale * gradient[k] + weightDecay * theta[k])
            }
        }
        gradient = Array(repeating: 0, count: steps)
        return norm
    }
}

/// What `save` writes: a small JSON document.
struct StylizedCheckpoint: Codable {
    var format = "prism-stylized/1"
    var theta: [Double]
    var reference: [Double]
}

/// The step judge of the stylized task: the first failed step, and the
/// fraction of steps before it (RTS). With probability `noise` it reports a
/// wrong index instead, uniform over the other n - 1 step indices.
struct StylizedJudge {
    var noise: Double
    var rng: SplitMix

    /// The verdict on a completion of a chain of `steps` steps: nil first
    /// error when all steps succeeded.
    mutating func judge(_ completion: Substring, steps: Int) -> (score: Double, firstError: Int?) {
        var index = 0
        for character in completion {
            guard character == "1", index < steps else { break }
            index += 1
        }
        if index >= steps, completion.count == steps { return (1, nil) }
        // A chain that stopped early without a "0" failed at the step it skipped.
        index = min(index, steps - 1)
        index = misreport(index, count: steps, noise: noise, rng: &rng)
        return (Double(index) / Double(steps), index)
    }
}

