// The stylized model as a Prism plugin (see StylizedModel.swift): one
// library, one plugin id, three interfaces, so the very same GRPO loop and
// strategies that train the transformer run on it:
//   prism.backend/1   the tabular policy (decode, log-probs, backward, SGD, save/load);
//   prism.reward/1    1 iff the completion equals the reference ("1" x n), else 0;
//   prism.feedback/1  the step judge: first failed step and RTS, with optional noise.
// Config (all optional): {"steps": n, "init": number or [n numbers],
// "noise": eps, "seed": s}. See Documentation/Plugins.md.
import CPrism
import FoundationEssentials
import PluginKit
import Synchronization

/// One instance: whichever interface the host uses it through.
final class Stylized: PluginObject, @unchecked Sendable {
    let lastError = ErrorText()
    var policy: StylizedPolicy
    /// Chain states of the decoding in progress, one per row.
    var decoding: [ChainState]?
    let judge: Mutex<StylizedJudge>

    init(config: PluginConfig) throws(ConfigError) {
        let steps = try config.int("steps", default: 2, in: 1...64)
        var initial = Array(repeating: -2.5, count: steps)
        if config.has("init") {
            let values = try config.doubles("init", in: -50...50)
            guard values.count == 1 || values.count == steps else {
                throw ConfigError("config key 'init': expected one number or \(steps) (one per step), got \(values.count)")
            }
            initial = values.count == 1 ? Array(repeating: values[0], count: steps) : values
        }
        policy = StylizedPolicy(initial: initial)
        judge = Mutex(StylizedJudge(
            noise: try config.double("noise", default: 0, in: 0...1),
            rng: SplitMix(seed: UInt64(try config.int("seed", default: 0, in: 0...Int(Int32.max))))))
    }

    var steps: Int { policy.steps }

    /// Whether a reference answer is a stylized chain ("1" x n).
    static func isChain(_ reference: String) -> Bool {
        !reference.isEmpty && reference.allSatisfy { $0 == "1" }
    }

    /// The chain length a reference answer names, else the config's.
    func steps(reference: String) -> Int {
        Self.isChain(reference) ? reference.count : steps
    }
}

private let createErrors = CreateErrors()

/// Walks row `r`: `visit(t, state before token t, token t)` for every
/// position; returns the state after the whole row.
@discardableResult
private func rowStates(_ b: prism_token_batch, _ r: Int, steps: Int,
                       _ visit: (Int, ChainState, Int32) -> Void = { _, _, _ in }) -> ChainState {
    var state = ChainState()
    let length = Int(b.lengths[r])
    for t in 0..<length {
        let token = b.tokens[r * Int(b.stride) + t]
        visit(t, state, token)
        state.append(token, steps: steps)
    }
    return state
}

private func validate(_ b: prism_token_batch, _ call: String) throws {
    for r in 0..<Int(b.rows) {
        guard b.lengths[r] <= b.stride else {
            throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "\(call): row \(r) has length \(b.lengths[r]) > stride \(b.stride)")
        }
        for t in 0..<Int(b.lengths[r]) {
            let token = b.tokens[r * Int(b.stride) + t]
            guard token >= 0, token < StylizedToken.vocabulary else {
                throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "\(call): token \(token) at row \(r), position \(t) is not in 0..<4")
            }
        }
    }
}

private let maxSequence = 4096

private nonisolated(unsafe) let backendTable = immortal(prism_backend_v1(
    struct_size: UInt32(MemoryLayout<prism_backend_v1>.size), reserved: 0,
    get_info: { raw, out in
        Stylized.call(raw) { m in
            out.pointee.vocab_size = UInt32(StylizedToken.vocabulary)
            out.pointee.bos_token = -1
            out.pointee.eos_token = StylizedToken.eos
            out.pointee.pad_token = StylizedToken.eos
            out.pointee.max_seq_len = UInt32(maxSequence)
            if out.pointee.struct_size >= UInt32(MemoryLayout<prism_backend_info>.size) {
                out.pointee.parameter_count = UInt64(m.steps)
            }
            return PRISM_OK
        }
    },
    tokenize: { raw, text, out, capacity, count in
        Stylized.call(raw) { _ in
            var ids: [Int32] = []
            for character in text.string {
                guard let id = StylizedToken.characters.firstIndex(of: character) else {
                    throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT,
                                  message: "tokenize: '\(character)' is not in the vocabulary \"01?\"")
                }
                ids.append(Int32(id))
            }
            return writeTokens(ids, to: out, capacity: capacity, count: count)
        }
    },
    detokenize: { raw, tokens, count, out, capacity, length in
        Stylized.call(raw) { _ in
            var bytes: [UInt8] = []
            for i in 0..<(tokens == nil ? 0 : count) {
                let id = tokens![i]
                if id == StylizedToken.eos { continue }
                guard id >= 0, id < StylizedToken.eos else {
                    throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "detokenize: token \(id) is not in 0..<4")
                }
                bytes.append(StylizedToken.characters[Int(id)].asciiValue!)
            }
            return writeText(bytes, to: out, capacity: capacity, length: length)
        }
    },
    decode_begin: { raw, batch, logits in
        Stylized.call(raw) { m in
            let b = batch.pointee
            try validate(b, "decode_begin")
            var states: [ChainState] = []
            for r in 0..<Int(b.rows) {
                guard b.lengths[r] >= 1 else {
                    throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "decode_begin: prompt \(r) is empty")
                }
                let state = rowStates(b, r, steps: m.steps)
                states.append(state)
                m.policy.logits(state, weights: m.policy.theta, temperature: 1,
                                into: logits + r * StylizedToken.vocabulary)
            }
            m.decoding = states
            return PRISM_OK
        }
    },
    decode_step: { raw, tokens, logits in
        Stylized.call(raw) { m in
            guard var states = m.decoding else {
                throw PluginFailure(status: PRISM_E_STATE, message: "decode_step: no decoding in progress (call decode_begin first)")
            }
            for r in states.indices {
                guard tokens[r] >= 0, tokens[r] < StylizedToken.vocabulary else {
                    throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "decode_step: token \(tokens[r]) of row \(r) is not in 0..<4")
                }
                states[r].append(tokens[r], steps: m.steps)
                m.policy.logits(states[r], weights: m.policy.theta, temperature: 1,
                                into: logits + r * StylizedToken.vocabulary)
            }
            m.decoding = states
            return PRISM_OK
        }
    },
    logprobs: { raw, batch, which, temperature, out in
        Stylized.call(raw) { m in
            let b = batch.pointee
            try validate(b, "logprobs")
            guard temperature > 0 else { throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "logprobs: temperature must be > 0") }
            let weights = which == PRISM_MODEL_REFERENCE ? m.policy.reference : m.policy.theta
            out.update(repeating: 0, count: Int(b.rows) * Int(b.stride))
            for r in 0..<Int(b.rows) {
                rowStates(b, r, steps: m.steps) { t, state, token in
                    guard t > 0 else { return }
                    out[r * Int(b.stride) + t] = Float(StylizedPolicy.logprob(token, state, weights: weights, temperature: temperature).logp)
                }
            }
            return PRISM_OK
        }
    },
    backward: { raw, batch, temperature, grad in
        Stylized.call(raw) { m in
            let b = batch.pointee
            try validate(b, "backward")
            guard temperature > 0 else { throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "backward: temperature must be > 0") }
            for r in 0..<Int(b.rows) {
                rowStates(b, r, steps: m.steps) { t, state, token in
                    guard t > 0, !state.ended else { return }
                    let g = Double(grad[r * Int(b.stride) + t])
                    guard g != 0 else { return }
                    m.policy.gradient[state.successes] +=
                        g * StylizedPolicy.logprob(token, state, weights: m.policy.theta, temperature: temperature).dTheta
                }
            }
            return PRISM_OK
        }
    },
    optimizer_step: { raw, step, report in
        Stylized.call(raw) { m in
            let s = step.pointee
            let norm = m.policy.sgd(learningRate: s.learning_rate, weightDecay: s.weight_decay, maxGradNorm: s.max_grad_norm)
            report?.pointee.grad_norm = norm
            guard norm.isFinite else {
                throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "optimizer_step: the gradient norm is \(norm); nothing was changed")
            }
            return PRISM_OK
        }
    },
    zero_grad: { raw in
        Stylized.call(raw) { m in
            m.policy.gradient = Array(repeating: 0, count: m.steps)
            return PRISM_OK
        }
    },
    snapshot_reference: { raw in
        Stylized.call(raw) { m in
            m.policy.reference = m.policy.theta
            return PRISM_OK
        }
    },
    save: { raw, path in
        Stylized.call(raw) { m in
            let target = URL(fileURLWithPath: path.string)
            do {
                let data = try JSONEncoder().encode(StylizedCheckpoint(theta: m.policy.theta, reference: m.policy.reference))
                try data.write(to: target, options: .atomic)
            } catch {
                throw PluginFailure(status: PRISM_E_IO, message: "save \(path.string): \(error)")
            }
            return PRISM_OK
        }
    },
    load: { raw, path in
        Stylized.call(raw) { m in
            let file = path.string
            guard let data = FileManager.default.contents(atPath: file) else {
                throw PluginFailure(status: PRISM_E_IO, message: "load \(file): cannot read the file")
            }
            guard let saved = try? JSONDecoder().decode(StylizedCheckpoint.self, from: data),
                  saved.format == "prism-stylized/1" else {
                throw PluginFailure(status: PRISM_E_IO, message: "load \(file): not a prism-stylized/1 checkpoint")
            }
            guard saved.theta.count == m.steps, saved.reference.count == m.steps,
                  (saved.theta + saved.reference).allSatisfy(\.isFinite) else {
                throw PluginFailure(status: PRISM_E_IO,
                              message: "load \(file): expected \(m.steps) finite logits, found \(saved.theta.count)")
            }
            m.policy.theta = saved.theta
            m.policy.reference = saved.reference
            m.policy.gradient = Array(repeating: 0, count: m.steps)
            return PRISM_OK
        }
    },
    tokenize_prompt: nil,
    logprobs_keep: nil,
    backward_kept: nil,
    decode_step_rows: nil
))

private nonisolated(unsafe) let rewardTable = immortal(prism_reward_v1(
    struct_size: UInt32(MemoryLayout<prism_reward_v1>.size), reserved: 0,
    score: { raw, samples, count, rewards, correct in
        Stylized.call(raw) { m in
            for i in 0..<count {
                let reference = samples[i].reference.string
                let completion = String(samples[i].completion.string.filter { !$0.isWhitespace })
                guard Stylized.isChain(reference) else {
                    rewards[i] = .nan  // not a stylized problem: no opinion
                    correct[i] = 0
                    continue
                }
                let right = completion == reference
                rewards[i] = right ? 1 : 0
                correct[i] = right ? 1 : 0
            }
            return PRISM_OK
        }
    }
))

private nonisolated(unsafe) let feedbackTable = immortal(prism_feedback_v1(
    struct_size: UInt32(MemoryLayout<prism_feedback_v1>.size), reserved: 0,
    assess: { raw, group, scores, firstErrors, disposition in
        Stylized.call(raw) { m in
            let g = group.pointee
            disposition.pointee = PRISM_DISPOSITION_KEEP
            let steps = m.steps(reference: g.reference.string)
            m.judge.withLock { judge in
                let spans = hasSpans(g) ? g.first_error_spans : nil
                for i in 0..<Int(g.count) {
                    let completion = g.completions[i].string
                    let verdict = judge.judge(completion[...], steps: steps)
                    scores[i] = verdict.score
                    firstErrors[i] = Int32(verdict.firstError ?? -1)
                    // Step k is character k; a step never tried is the empty span at the end.
                    if let spans, let k = verdict.firstError {
                        let length = completion.utf8.count
                        spans[i] = k < length ? prism_byte_span(begin: Int32(k), end: Int32(k + 1))
                            : prism_byte_span(begin: Int32(length), end: Int32(length))
                    }
                }
            }
            return PRISM_OK
        }
    }
))

private nonisolated(unsafe) let entry = immortal(prism_plugin_entry(
    struct_size: UInt32(MemoryLayout<prism_plugin_entry>.size),
    abi_major: UInt16(PRISM_ABI_MAJOR),
    abi_minor: UInt16(PRISM_ABI_MINOR),
    id: staticCString("org.prism.stylized"),
    name: staticCString("Stylized multi-step model"),
    version: staticCString("1.0.0"),
    description: staticCString(
        "Tabular n-step reasoning policy (step k succeeds with sigmoid(theta_k)), its exact-answer reward and noisy step judge."),
    create: { _, config, out in
        createErrors.create(out, failure: PRISM_E_CONFIG) {
            try Stylized(config: try PluginConfig(json: config.string, allowed: ["steps", "init", "noise", "seed"]))
        }
    },
    destroy: { Stylized.destroy($0) },
    get_interface: { _, id in
        switch String(cString: id) {
        case PRISM_BACKEND_V1_ID: UnsafeRawPointer(backendTable)
        case PRISM_REWARD_V1_ID: UnsafeRawPointer(rewardTable)
        case PRISM_FEEDBACK_V1_ID: UnsafeRawPointer(feedbackTable)
        default: nil
        }
    },
    last_error: { Stylized.lastError($0, creating: createErrors) }
))

@c(prism_get_plugin_entry)
public func prismGetPluginEntry(_ hostABIMajor: UInt16) -> UnsafePointer<prism_plugin_entry>? {
    hostABIMajor == UInt16(PRISM_ABI_MAJOR) ? UnsafePointer(entry) : nil
}
