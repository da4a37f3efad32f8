import CPrismKernels
import PluginKit

/// The transformer's JSON config (every key optional; see Documentation/Plugins.md).
struct TransformerConfig: Equatable {
    static let keys = [
        "vocab", "d_model", "layers", "heads", "d_ff", "max_len", "tie_embeddings", "seed", "init_std", "threads",
        "kernels", "share_prefixes", "checkpoint",
    ]
    /// The characters of the vocabulary, after the three special tokens.
    var vocab = "0123456789+-*=;# "
    var dModel = 128
    var layers = 2
    var heads = 4
    var dFF = 512
    var maxLen = 96
    /// The LM head is the token embedding transposed (one matrix).
    var tieEmbeddings = false
    var seed: UInt64 = 0
    var initStd = 0.02
    /// Kernel threads; 0 = every online CPU.
    var threads = 0
    /// "auto" (AVX2+FMA when the CPU has it) or "portable".
    var kernels = "auto"
    /// The training passes compute a prefix shared by sequences of a batch
    /// (a GRPO group's prompt) once.
    var sharePrefixes = true
    /// A safetensors checkpoint to load at create.
    var checkpoint: String?

    init() {}

    init(json: String) throws(ConfigError) {
        let c = try PluginConfig(json: json, allowed: Self.keys)
        vocab = try c.string("vocab", default: vocab) ?? vocab
        dModel = try c.int("d_model", default: dModel, in: 8...4096)
        layers = try c.int("layers", default: layers, in: 1...64)
        heads = try c.int("heads", default: heads, in: 1...64)
        dFF = try c.int("d_ff", default: dFF, in: 8...16384)
        maxLen = try c.int("max_len", default: maxLen, in: 2...1024)
        tieEmbeddings = try c.bool("tie_embeddings", default: false)
        seed = UInt64(try c.int("seed", default: 0, in: 0...Int.max))
        initStd = try c.double("init_std", default: initStd, in: 0...1)
        threads = try c.int("threads", default: threads, in: 0...16)
        kernels = try c.string("kernels", default: kernels) ?? kernels
        sharePrefixes = try c.bool("share_prefixes", default: sharePrefixes)
        checkpoint = try c.string("checkpoint", default: nil)
        guard dModel % heads == 0 else {
            throw ConfigError("config key 'heads': \(heads) does not divide d_model \(dModel)")
        }
        guard ["auto", "portable"].contains(kernels) else {
            throw ConfigError("config key 'kernels': expected \"auto\" or \"portable\", got \"\(kernels)\"")
        }
        let scalars = Array(vocab.unicodeScalars)
        guard !scalars.isEmpty else { throw ConfigError("config key 'vocab': expected at least one character") }
        if let duplicate = scalars.enumerated().first(where: { scalars[..<$0.offset].contains($0.element) }) {
            throw ConfigError("config key 'vocab': character '\(duplicate.element)' appears twice")
        }
    }

    var dims: pk_dims {
        pk_dims(vocab: Int32(CharTokenizer.specialCount + vocab.unicodeScalars.count), d_model: Int32(dModel),
                layers: Int32(layers), heads: Int32(heads), d_ff: Int32(dFF), max_len: Int32(maxLen))
    }

    /// The shape part of the config, stored in checkpoints and compared on load.
    var architectureJSON: String {
        "{\"vocab\":\(jsonString(vocab)),\"d_model\":\(dModel),\"layers\":\(layers),\"heads\":\(heads),"
            + "\"d_ff\":\(dFF),\"max_len\":\(maxLen)" + (tieEmbeddings ? ",\"tie_embeddings\":true}" : "}")
    }
}

