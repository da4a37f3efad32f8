import CPrism
import PrismCore

extension PluginInstance {
    /// The instance as a ``Sampler`` (interface `prism.sampler/1`).
    /// - Throws: `interfaceNotProvided`, `structTooSmall` or `missingFunction`.
    public func sampler() throws(PluginError) -> any Sampler {
        let table = try unsafe requireInterface(
            PRISM_SAMPLER_V1_ID, as: prism_sampler_v1.self,
            functions: [("sample", offset(\prism_sampler_v1.sample))])
        return unsafe SamplerAdapter(instance: self, table: table.pointee)
    }
}

/// Calls `prism_sampler_v1.sample` and checks what comes back.
final class SamplerAdapter: Sampler {
    let instance: PluginInstance
    let table: prism_sampler_v1

    init(instance: PluginInstance, table: prism_sampler_v1) {
        self.instance = instance
        self.table = table
    }

    func sample(logits: [Float], rows: Int, vocab: Int, rng: inout RandomState) throws -> [Int] {
        guard logits.count == rows * vocab else {
            throw PluginError(
                .callFailed, plugin: instance.library.id,
                reason: "sample: \(logits.count) logits for \(rows) rows of vocabulary \(vocab)")
        }
        var state = prism_rng(s: rng.words)
        var tokens = [Int32](repeating: -1, count: rows)
        let status = unsafe logits.withUnsafeBufferPointer { logitBuffer in
            unsafe tokens.withUnsafeMutableBufferPointer { tokenBuffer in
                unsafe table.sample(
                    instance.handle, logitBuffer.baseAddress ?? UnsafePointer(emptyPointer()), UInt32(rows),
                    UInt32(vocab), &state, tokenBuffer.baseAddress ?? emptyPointer())
            }
        }
        try instance.check(status, "sample")
        guard state.s != (0, 0, 0, 0) else {
            throw instance.invalidOutput("sample", "an all-zero random state")
        }
        rng = RandomState(words: state.s)
        return try tokens.enumerated().map { row, token in
            guard token >= 0, Int(token) < vocab else {
                throw instance.invalidOutput("sample", "token \(token) for row \(row); expected 0..<\(vocab)")
            }
            return Int(token)
        }
    }
}
