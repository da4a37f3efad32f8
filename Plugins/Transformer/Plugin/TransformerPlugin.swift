// The transformer backend as a Prism plugin: prism.backend/1 over the C
// compute core (Kernels/). See Documentation/Plugins.md for the config.
import CPrism
import CPrismKernels
import PluginKit

private let createErrors = CreateErrors()




private func batchShape(_ m: TransformerModel, _ b: UnsafePointer<prism_token_batch>, _ call: String) throws -> (Int, Int) {
    let rows = Int(b.pointee.rows), stride = Int(b.pointee.stride)
    guard stride <= m.config.maxLen else {
        throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT,
                      message: "\(call): sequences of \(stride) tokens exceed max_len \(m.config.maxLen)")
    }
    for r in 0..<rows where Int(b.pointee.lengths[r]) > stride {
        throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "\(call): row \(r) has length \(b.pointee.lengths[r]) > stride \(stride)")
    }
    return (rows, stride)
}

private func check(_ result: Int32, _ call: String) throws {
    switch result {
    case 0: return
    case -2: throw PluginFailure(status: PRISM_E_STATE, message: "\(call): no decoding in progress (call decode_begin first)")
    case -3: throw PluginFailure(status: PRISM_E_STATE, message: "\(call): a row would exceed max_len")
    case -4: throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT,
                                 message: "\(call): rows must be increasing indices of rows still going (a row left out has finished)")
    case -5: throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "\(call): a token outside the vocabulary")
    default: throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "\(call): out of memory or a sequence longer than max_len")
    }
}

private nonisolated(unsafe) let backendTable = immortal(prism_backend_v1(
    struct_size: UInt32(MemoryLayout<prism_backend_v1>.size), reserved: 0,
    get_info: { raw, out in
        TransformerModel.call(raw) { m in
            out.pointee.vocab_size = UInt32(m.tokenizer.count)
            out.pointee.bos_token = CharTokenizer.bos
            out.pointee.eos_token = CharTokenizer.eos
            out.pointee.pad_token = CharTokenizer.pad
            out.pointee.max_seq_len = UInt32(m.config.maxLen)
            if out.pointee.struct_size >= UInt32(MemoryLayout<prism_backend_info>.size) {
                out.pointee.parameter_count = UInt64(m.parameterCount)
            }
            return PRISM_OK
        }
    },
    tokenize: { raw, text, out, capacity, count in
        TransformerModel.call(raw) { m in
            switch m.tokenizer.encode(text.string) {
            case .failure(let error): throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: error.description)
            case .success(let ids): return writeTokens(ids, to: out, capacity: capacity, count: count)
            }
        }
    },
    detokenize: { raw, tokens, count, out, capacity, length in
        TransformerModel.call(raw) { m in
            let text = m.tokenizer.decode(UnsafeBufferPointer(start: tokens, count: tokens == nil ? 0 : count))
            return writeText(Array(text.utf8), to: out, capacity: capacity, length: length)
        }
    },
    decode_begin: { raw, batch, logits in
        TransformerModel.call(raw) { m in
            let (rows, stride) = try batchShape(m, batch, "decode_begin")
            for r in 0..<rows where batch.pointee.lengths[r] < 1 {
                throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "decode_begin: prompt \(r) is empty")
            }
            try check(pk_decode_begin(m.model, batch.pointee.tokens, batch.pointee.lengths, Int32(rows), Int32(stride), logits),
                      "decode_begin")
            return PRISM_OK
        }
    },
    decode_step: { raw, tokens, logits in
        TransformerModel.call(raw) { m in
            try check(pk_decode_step(m.model, tokens, logits), "decode_step")
            return PRISM_OK
        }
    },
    logprobs: { raw, batch, which, temperature, out in
        TransformerModel.call(raw) { m in
            let (rows, stride) = try batchShape(m, batch, "logprobs")
            guard temperature > 0 else { throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "logprobs: temperature must be > 0") }
            try check(pk_logprobs(m.model, which == PRISM_MODEL_REFERENCE ? 1 : 0, batch.pointee.tokens, batch.pointee.lengths,
                                  Int32(rows), Int32(stride), temperature, out), "logprobs")
            return PRISM_OK
        }
    },
    backward: { raw, batch, temperature, grad in
        TransformerModel.call(raw) { m in
            let (rows, stride) = try batchShape(m, batch, "backward")
            guard temperature > 0 else { throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "backward: temperature must be > 0") }
            try check(pk_backward(m.model, batch.pointee.tokens, batch.pointee.lengths, Int32(rows), Int32(stride),
                                  temperature, grad), "backward")
            return PRISM_OK
        }
    },
    optimizer_step: { raw, step, report in
        TransformerModel.call(raw) { m in
            let s = step.pointee
            let norm = pk_adamw(m.model, s.learning_rate, s.beta1, s.beta2, s.epsilon, s.weight_decay, s.max_grad_norm)
            report?.pointee.grad_norm = norm
            guard norm.isFinite else {
                throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "optimizer_step: the gradient norm is \(norm)")
            }
            return PRISM_OK
        }
    },
    zero_grad: { raw in
        TransformerModel.call(raw) { m in
            pk_grads(m.model)!.update(repeating: 0, count: m.parameterCount)
            return PRISM_OK
        }
    },
    snapshot_reference: { raw in
        TransformerModel.call(raw) { m in
            pk_reference(m.model)!.update(from: pk_params(m.model)!, count: m.parameterCount)
            return PRISM_OK
        }
    },
    save: { raw, path in
        TransformerModel.call(raw) { m in
            do { try m.save(path: path.string) } catch { throw PluginFailure(status: PRISM_E_IO, message: "\(error)") }
            return PRISM_OK
        }
    },
    load: { raw, path in
        TransformerModel.call(raw) { m in
            pk_model_discard_kept(m.model)
            do { try m.load(path: path.string) } catch { throw PluginFailure(status: PRISM_E_IO, message: "\(error)") }
            return PRISM_OK
        }
    },
    tokenize_prompt: nil,
    logprobs_keep: { raw, batch, temperature, out in
        TransformerModel.call(raw) { m in
            let (rows, stride) = try batchShape(m, batch, "logprobs_keep")
            guard temperature > 0 else {
                throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "logprobs_keep: temperature must be > 0")
            }
            try check(pk_logprobs_keep(m.model, batch.pointee.tokens, batch.pointee.lengths, Int32(rows), Int32(stride),
                                       temperature, out), "logprobs_keep")
            return PRISM_OK
        }
    },
    backward_kept: { raw, grad in
        TransformerModel.call(raw) { m in
            let status = pk_backward_kept(m.model, grad)
            if status == -2 {
                throw PluginFailure(status: PRISM_E_STATE, message: "backward_kept: no pass kept (logprobs_keep first; any other pass discards it)")
            }
            try check(status, "backward_kept")
            return PRISM_OK
        }
    },
    decode_step_rows: { raw, rows, count, tokens, logits in
        TransformerModel.call(raw) { m in
            try check(pk_decode_step_rows(m.model, rows, Int32(clamping: count), tokens, logits), "decode_step_rows")
            return PRISM_OK
        }
    }
))

private nonisolated(unsafe) let entry = immortal(prism_plugin_entry(
    struct_size: UInt32(MemoryLayout<prism_plugin_entry>.size),
    abi_major: UInt16(PRISM_ABI_MAJOR),
    abi_minor: UInt16(PRISM_ABI_MINOR),
    id: staticCString("org.prism.transformer"),
    name: staticCString("CPU transformer"),
    version: staticCString("1.0.0"),
    description: staticCString(
        "Decoder-only pre-LN transformer with a character tokenizer, KV-cache decoding, AdamW and safetensors checkpoints."),
    create: { _, config, out in
        createErrors.create(out, failure: PRISM_E_IO) { try TransformerModel(config: try TransformerConfig(json: config.string)) }
    },
    destroy: { TransformerModel.destroy($0) },
    get_interface: { _, id in
        String(cString: id) == PRISM_BACKEND_V1_ID ? UnsafeRawPointer(backendTable) : nil
    },
    last_error: { TransformerModel.lastError($0, creating: createErrors) }
))

@c(prism_get_plugin_entry)
public func prismGetPluginEntry(_ hostABIMajor: UInt16) -> UnsafePointer<prism_plugin_entry>? {
    hostABIMajor == UInt16(PRISM_ABI_MAJOR) ? UnsafePointer(entry) : nil
}
