// The torch backend as a Prism plugin: prism.backend/1 over a PyTorch worker
// process running a Hugging Face causal LM (TorchWorker.swift,
// worker/prism_torch_worker.py). See Documentation/Plugins.md for the config.
import CPrism
import PluginKit

private let createErrors = CreateErrors()

private func batch(_ b: UnsafePointer<prism_token_batch>) -> (tokens: [Int32], lengths: [Int32], rows: Int, stride: Int) {
    let rows = Int(b.pointee.rows), stride = Int(b.pointee.stride)
    let tokens = rows * stride == 0 ? [] : Array(UnsafeBufferPointer(start: b.pointee.tokens, count: rows * stride))
    let lengths = rows == 0 ? [] : (0..<rows).map { Int32(b.pointee.lengths[$0]) }
    return (tokens, lengths, rows, stride)
}

private func vocab(_ w: TorchWorker) -> Int { (try? w.facts())?["vocab"] as? Int ?? 0 }

/// The ids of a worker's answer.
private func ids(_ answer: [String: Any]) -> [Int32] { (answer["ids"] as? [Int] ?? []).map { Int32($0) } }

private nonisolated(unsafe) let backendTable = immortal(prism_backend_v1(
    struct_size: UInt32(MemoryLayout<prism_backend_v1>.size), reserved: 0,
    get_info: { raw, out in
        TorchWorker.call(raw) { w in
            let info = try w.facts()
            out.pointee.vocab_size = UInt32(info["vocab"] as? Int ?? 0)
            out.pointee.bos_token = Int32(info["bos"] as? Int ?? -1)
            out.pointee.eos_token = Int32(info["eos"] as? Int ?? -1)
            out.pointee.pad_token = Int32(info["pad"] as? Int ?? -1)
            out.pointee.max_seq_len = UInt32(info["max_len"] as? Int ?? 0)
            if out.pointee.struct_size >= UInt32(MemoryLayout<prism_backend_info>.size) {
                out.pointee.parameter_count = UInt64(info["parameters"] as? Int ?? 0)
            }
            return PRISM_OK
        }
    },
    tokenize: { raw, text, out, capacity, count in
        TorchWorker.call(raw) { w in writeTokens(ids(try w.call("tokenize", ["text": text.string])), to: out, capacity: capacity, count: count) }
    },
    detokenize: { raw, tokens, count, out, capacity, length in
        TorchWorker.call(raw) { w in
            let ids = tokens == nil ? [] : (0..<count).map { Int(tokens![$0]) }
            let text = (try w.call("detokenize", ["ids": ids])["text"] as? String) ?? ""
            return writeText(Array(text.utf8), to: out, capacity: capacity, length: length)
        }
    },
    decode_begin: { raw, b, logits in
        TorchWorker.call(raw) { w in
            let (tokens, lengths, rows, stride) = batch(b)
            guard lengths.allSatisfy({ $0 >= 1 }) else {
                throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "decode_begin: every prompt needs a token")
            }
            let slices = w.slices(rows)
            try w.rows("begin_decoding", ["stride": stride], slices: slices, width: ["tokens": stride],
                       ints: ["tokens": tokens, "lengths": lengths], output: ("logits", vocab(w), logits))
            w.decodingSlices = slices
            w.decodingGoing = Array(repeating: true, count: rows)
            return PRISM_OK
        }
    },
    decode_step: { raw, tokens, logits in
        TorchWorker.call(raw) { w in
            let rows = w.decodingSlices.last?.upperBound ?? 0
            guard rows > 0 else { throw PluginFailure(status: PRISM_E_STATE, message: "decode_step: no decoding in progress") }
            try w.rows("decode_step", [:], slices: w.decodingSlices, width: [:],
                       ints: ["tokens": Array(UnsafeBufferPointer(start: tokens, count: rows))], output: ("logits", vocab(w), logits))
            return PRISM_OK
        }
    },
    logprobs: { raw, b, which, temperature, out in
        TorchWorker.call(raw) { w in
            let (tokens, lengths, rows, stride) = batch(b)
            guard temperature > 0 else { throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "logprobs: temperature must be > 0") }
            try w.rows("logprobs", ["stride": stride, "model": which == PRISM_MODEL_REFERENCE ? 1 : 0, "temperature": Double(temperature)],
                       slices: w.slices(rows), width: ["tokens": stride],
                       ints: ["tokens": tokens, "lengths": lengths], output: ("logprobs", stride, out))
            return PRISM_OK
        }
    },
    backward: { raw, b, temperature, grad in
        TorchWorker.call(raw) { w in
            let (tokens, lengths, rows, stride) = batch(b)
            guard temperature > 0 else { throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "backward: temperature must be > 0") }
            let gradient = rows * stride == 0 ? [] : Array(UnsafeBufferPointer(start: grad, count: rows * stride))
            try w.rows("backward", ["stride": stride, "temperature": Double(temperature)],
                           slices: w.slices(rows), width: ["tokens": stride, "grad": stride],
                           floats: ["grad": gradient], ints: ["tokens": tokens, "lengths": lengths], output: nil)
            return PRISM_OK
        }
    },
    optimizer_step: { raw, step, report in
        TorchWorker.call(raw) { w in
            let s = step.pointee
            let answer = try w.everywhere("optimizer_step", [
                "lr": s.learning_rate, "beta1": s.beta1, "beta2": s.beta2, "eps": s.epsilon,
                "weight_decay": s.weight_decay, "max_grad_norm": s.max_grad_norm,
            ])
            let norm = answer["grad_norm"] as? Double ?? .nan
            report?.pointee.grad_norm = norm
            guard norm.isFinite else {
                throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "optimizer_step: the gradient norm is \(norm)")
            }
            return PRISM_OK
        }
    },
    zero_grad: { raw in
        TorchWorker.call(raw) { w in
            _ = try w.everywhere("zero_grad")
            return PRISM_OK
        }
    },
    snapshot_reference: { raw in
        TorchWorker.call(raw) { w in
            _ = try w.everywhere("snapshot_reference")
            return PRISM_OK
        }
    },
    save: { raw, path in
        TorchWorker.call(raw) { w in
            _ = try w.call("save", ["path": path.string])  // the ranks hold the same weights
            return PRISM_OK
        }
    },
    load: { raw, path in
        TorchWorker.call(raw) { w in
            _ = try w.everywhere("load", ["path": path.string])
            return PRISM_OK
        }
    },
    tokenize_prompt: { raw, text, out, capacity, count in
        TorchWorker.call(raw) { w in
            writeTokens(ids(try w.call("tokenize_prompt", ["text": text.string])), to: out, capacity: capacity, count: count)
        }
    },
    logprobs_keep: { raw, b, temperature, out in
        TorchWorker.call(raw) { w in
            let (tokens, lengths, rows, stride) = batch(b)
            guard temperature > 0 else {
                throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: "logprobs_keep: temperature must be > 0")
            }
            w.kept = nil
            let slices = w.slices(rows)
            try w.rows("logprobs_keep", ["stride": stride, "temperature": Double(temperature)],
                       slices: slices, width: ["tokens": stride],
                       ints: ["tokens": tokens, "lengths": lengths], output: ("logprobs", stride, out))
            w.kept = (slices, stride)
            return PRISM_OK
        }
    },
    backward_kept: { raw, grad in
        TorchWorker.call(raw) { w in
            guard let (slices, stride) = w.kept else {
                throw PluginFailure(status: PRISM_E_STATE, message: "backward_kept: no pass kept (logprobs_keep first; any other call discards it)")
            }
            w.kept = nil
            let count = (slices.last?.upperBound ?? 0) * stride
            let gradient = count == 0 ? [] : Array(UnsafeBufferPointer(start: grad, count: count))
            try w.rows("backward_kept", [:], slices: slices, width: ["grad": stride], floats: ["grad": gradient], output: nil)
            return PRISM_OK
        }
    },
    decode_step_rows: { raw, rows, count, tokens, logits in
        TorchWorker.call(raw) { w in
            let total = w.decodingSlices.last?.upperBound ?? 0
            guard total > 0 else { throw PluginFailure(status: PRISM_E_STATE, message: "decode_step_rows: no decoding in progress") }
            let listed = (0..<Int(count)).map { Int(rows[$0]) }
            for (i, row) in listed.enumerated() where row >= total || (i > 0 && row <= listed[i - 1]) || !w.decodingGoing[row] {
                throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT,
                                    message: "decode_step_rows: rows must be increasing indices of rows still going (a row left out has finished)")
            }
            // Each rank gets the listed rows of its slice, as indices into that slice.
            var parts: [Range<Int>] = [], local: [Int32] = [], next = 0
            for slice in w.decodingSlices {
                let start = next
                while next < listed.count, listed[next] < slice.upperBound {
                    local.append(Int32(listed[next] - slice.lowerBound))
                    next += 1
                }
                parts.append(start..<next)
            }
            try w.rows("decode_step_rows", [:], slices: parts, width: [:],
                       ints: ["rows": local, "tokens": Array(UnsafeBufferPointer(start: tokens, count: listed.count))],
                       output: ("logits", vocab(w), logits))
            w.decodingGoing = Array(repeating: false, count: total)
            for row in listed { w.decodingGoing[row] = true }
            return PRISM_OK
        }
    }
))

private nonisolated(unsafe) let entry = immortal(prism_plugin_entry(
    struct_size: UInt32(MemoryLayout<prism_plugin_entry>.size),
    abi_major: UInt16(PRISM_ABI_MAJOR),
    abi_minor: UInt16(PRISM_ABI_MINOR),
    id: staticCString("org.prism.torch"),
    name: staticCString("PyTorch backend"),
    version: staticCString("0.1.0"),
    description: staticCString(
        "A Hugging Face causal LM in a PyTorch worker process: its tokenizer, KV-cache decoding, AdamW, safetensors checkpoints."),
    create: { _, config, out in
        createErrors.create(out, failure: PRISM_E_CONFIG) { try TorchWorker(config: config.string) }
    },
    destroy: { TorchWorker.destroy($0) },
    get_interface: { _, id in
        String(cString: id) == PRISM_BACKEND_V1_ID ? UnsafeRawPointer(backendTable) : nil
    },
    last_error: { TorchWorker.lastError($0, creating: createErrors) }
))

@c(prism_get_plugin_entry)
public func prismGetPluginEntry(_ hostABIMajor: UInt16) -> UnsafePointer<prism_plugin_entry>? {
    hostABIMajor == UInt16(PRISM_ABI_MAJOR) ? UnsafePointer(entry) : nil
}
