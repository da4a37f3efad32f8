import CPrism
import CPrismKernels
import PluginKit
#if canImport(Glibc)
import Glibc
#endif

/// One backend instance: the C model plus tokenizer, config and the
/// checkpoint format. Calls on one instance are never concurrent (ABI rule).
final class TransformerModel: PluginObject {
    let config: TransformerConfig
    let tokenizer: CharTokenizer
    let model: OpaquePointer
    let tensors: [TensorSpec]
    let parameterCount: Int
    let lastError = ErrorText()

    init(config: TransformerConfig) throws(ModelError) {
        self.config = config
        tokenizer = CharTokenizer(vocab: config.vocab)
        guard let model = pk_model_new(config.dims) else {
            throw ModelError("out of memory creating the model")
        }
        self.model = model
        tensors = Self.tensorSpecs(config)
        parameterCount = Int(pk_make_layout(config.dims).total)
        precondition(tensors.map(\.count).reduce(0, +) == parameterCount, "tensor list and C layout disagree")
        if config.threads > 0 { pk_set_threads(Int32(config.threads)) }
        pk_model_use_portable(model, config.kernels == "portable" ? 1 : 0)
        pk_model_share_prefixes(model, config.sharePrefixes ? 1 : 0)
        initialize()
        pk_model_tie_head(model, config.tieEmbeddings ? 1 : 0)
        if let checkpoint = config.checkpoint { try load(path: checkpoint) }
    }

    deinit { pk_model_free(model) }

    /// The tensors in the order of the C layout, with checkpoint names.
    static func tensorSpecs(_ c: TransformerConfig) -> [TensorSpec] {
        let V = Int(c.dims.vocab), D = c.dModel, F = c.dFF
        var specs = [TensorSpec(name: "wte", shape: [V, D]), TensorSpec(name: "wpe", shape: [c.maxLen, D])]
        for l in 0..<c.layers {
            let h = "h.\(l)."
            specs += [
                TensorSpec(name: h + "ln_1.weight", shape: [D]), TensorSpec(name: h + "ln_1.bias", shape: [D]),
                TensorSpec(name: h + "attn.qkv.weight", shape: [D, 3 * D]),
                TensorSpec(name: h + "attn.qkv.bias", shape: [3 * D]),
                TensorSpec(name: h + "attn.proj.weight", shape: [D, D]),
                TensorSpec(name: h + "attn.proj.bias", shape: [D]),
                TensorSpec(name: h + "ln_2.weight", shape: [D]), TensorSpec(name: h + "ln_2.bias", shape: [D]),
                TensorSpec(name: h + "mlp.fc.weight", shape: [D, F]), TensorSpec(name: h + "mlp.fc.bias", shape: [F]),
                TensorSpec(name: h + "mlp.proj.weight", shape: [F, D]), TensorSpec(name: h + "mlp.proj.bias", shape: [D]),
            ]
        }
        specs += [TensorSpec(name: "ln_f.weight", shape: [D]), TensorSpec(name: "ln_f.bias", shape: [D]),
                  TensorSpec(name: "lm_head.weight", shape: [D, V])]
        return specs
    }

    /// GPT-2 initialisation: N(0, init_std) matrices, the residual
    /// projections scaled by 1/sqrt(2L), LayerNorm weights 1, biases 0.
    private func initialize() {
        var rng = prism_rng()
        prism_rng_seed(&rng, config.seed)
        let params = pk_params(model)!
        var offset = 0
        for spec in tensors {
            let isMatrix = spec.shape.count == 2
            let isNorm = spec.name.contains("ln_") && spec.name.hasSuffix(".weight")
            let residual = spec.name.hasSuffix("attn.proj.weight") || spec.name.hasSuffix("mlp.proj.weight")
            let std = config.initStd / (residual ? (2.0 * Double(config.layers)).squareRoot() : 1)
            for i in 0..<spec.count {
                params[offset + i] = isMatrix ? Float(std * gaussian(&rng)) : (isNorm ? 1 : 0)
            }
            offset += spec.count
        }
        pk_reference(model)!.update(from: params, count: parameterCount)
    }

    // MARK: checkpoints

    private static let groups = ["", "reference.", "adam.m.", "adam.v."]

    private func buffers() -> [UnsafeMutablePointer<Float>] {
        [pk_params(model)!, pk_reference(model)!, pk_adam_m(model)!, pk_adam_v(model)!]
    }

    func save(path: String) throws(SafetensorsError) {
        var entries: [(TensorSpec, UnsafePointer<Float>)] = []
        for (prefix, buffer) in zip(Self.groups, buffers()) {
            var offset = 0
            for spec in tensors {
                var named = spec
                named.name = prefix + spec.name
                entries.append((named, UnsafePointer(buffer + offset)))
                offset += spec.count
            }
        }
        try Safetensors.write(path: path, tensors: entries, metadata: [
            ("format", "prism-transformer/1"), ("architecture", config.architectureJSON),
            ("adam_step", String(pk_adam_step(model)!.pointee)),
        ])
    }

    /// Loads a checkpoint; the model is unchanged unless every tensor checks out.
    func load(path: String) throws(ModelError) {
        do {
            let file = try Safetensors.read(path: path)
            if let architecture = file.metadata["architecture"], architecture != config.architectureJSON {
                throw SafetensorsError("\(path): saved for architecture \(architecture), but this backend is \(config.architectureJSON)")
            }
            var staged: [[Float]] = []
            for (g, prefix) in Self.groups.enumerated() {
                var group: [Float] = []
                group.reserveCapacity(parameterCount)
                for spec in tensors {
                    if let floats = try file.floats(prefix + spec.name, shape: spec.shape, file: path) {
                        group += floats
                    } else if g == 0 {
                        throw SafetensorsError("\(path): missing tensor '\(spec.name)'")
                    } else {
                        break  // reference / optimizer state are optional
                    }
                }
                staged.append(group.count == parameterCount ? group : [])
            }
            let targets = buffers()
            for (g, floats) in staged.enumerated() {
                if floats.isEmpty {
                    // No reference: the loaded policy; no optimizer state: zeros.
                    if g == 1 { targets[1].update(from: staged[0], count: parameterCount) }
                    if g >= 2 { targets[g].update(repeating: 0, count: parameterCount) }
                } else {
                    targets[g].update(from: floats, count: parameterCount)
                }
            }
            pk_adam_step(model)!.pointee = Int64(file.metadata["adam_step"] ?? "0") ?? 0
            pk_model_tie_head(model, config.tieEmbeddings ? 1 : 0)
        } catch {
            throw ModelError("\(error)")
        }
    }
}

struct ModelError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A standard normal draw (Box–Muller on the ABI's generator).
func gaussian(_ rng: inout prism_rng) -> Double {
    let u1 = max(prism_rng_uniform(&rng), 1e-300)
    let u2 = prism_rng_uniform(&rng)
    return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
}
