import CPrism
import PrismCore

extension PluginInstance {
    /// The instance as a ``ComputeBackend`` (interface `prism.backend/1`).
    /// - Throws: `interfaceNotProvided`, `structTooSmall` or `missingFunction`.
    public func computeBackend() throws(PluginError) -> any ComputeBackend {
        let table = try unsafe requireInterface(
            PRISM_BACKEND_V1_ID, as: prism_backend_v1.self,
            functions: [
                ("get_info", offset(\prism_backend_v1.get_info)),
                ("tokenize", offset(\prism_backend_v1.tokenize)),
                ("detokenize", offset(\prism_backend_v1.detokenize)),
                ("decode_begin", offset(\prism_backend_v1.decode_begin)),
                ("decode_step", offset(\prism_backend_v1.decode_step)),
                ("logprobs", offset(\prism_backend_v1.logprobs)),
                ("backward", offset(\prism_backend_v1.backward)),
                ("optimizer_step", offset(\prism_backend_v1.optimizer_step)),
                ("zero_grad", offset(\prism_backend_v1.zero_grad)),
                ("snapshot_reference", offset(\prism_backend_v1.snapshot_reference)),
                ("save", offset(\prism_backend_v1.save)),
                ("load", offset(\prism_backend_v1.load)),
            ])
        let adapter = unsafe BackendAdapter(instance: self, table: table.pointee)
        adapter.cachedInfo = try adapter.readInfo()
        return adapter
    }
}

/// Calls the `prism_backend_v1` table and checks what comes back.
final class BackendAdapter: ComputeBackend {
    let instance: PluginInstance
    let table: prism_backend_v1
    var cachedInfo = BackendInfo(
        vocabSize: 0, bosToken: nil, eosToken: nil, padToken: nil, maxSequenceLength: 0, parameterCount: 0)
    /// Rows of the decoding in progress.
    private var decodingRows = 0

    init(instance: PluginInstance, table: prism_backend_v1) {
        self.instance = instance
        self.table = table
    }

    func readInfo() throws(PluginError) -> BackendInfo {
        var info = prism_backend_info()
        info.struct_size = UInt32(MemoryLayout<prism_backend_info>.size)
        try instance.check(unsafe table.get_info(instance.handle, &info), "get_info")
        guard info.vocab_size > 0 else { throw instance.invalidOutput("get_info", "vocab_size 0") }
        let token = { (id: Int32) -> Int? in id < 0 ? nil : Int(id) }
        return BackendInfo(
            vocabSize: Int(info.vocab_size), bosToken: token(info.bos_token), eosToken: token(info.eos_token),
            padToken: token(info.pad_token), maxSequenceLength: Int(info.max_seq_len),
            parameterCount: Int(info.parameter_count))
    }

    func info() throws -> BackendInfo { cachedInfo }

    func tokenize(_ text: String) throws -> [Int32] {
        try unsafe tokens(of: text, with: table.tokenize, "tokenize")
    }

    func tokenizePrompt(_ text: String) throws -> [Int32]? {
        guard unsafe table.struct_size >= UInt32(offset(\prism_backend_v1.tokenize_prompt) + MemoryLayout<UnsafeRawPointer>.size),
              let function = unsafe table.tokenize_prompt
        else { return nil }
        return try unsafe tokens(of: text, with: function, "tokenize_prompt")
    }

    /// Rows of the decoding in progress not yet finished by decodeStep(rows:tokens:).
    private var going: [Bool] = []

    func decodeStep(rows: [Int], tokens: [Int32]) throws -> [Float]? {
        guard unsafe table.struct_size >= UInt32(offset(\prism_backend_v1.decode_step_rows) + MemoryLayout<UnsafeRawPointer>.size),
              let function = unsafe table.decode_step_rows
        else { return nil }
        let fail = { (reason: String) in PluginError(.callFailed, plugin: self.instance.library.id, reason: "decode_step_rows: " + reason) }
        guard rows.count == tokens.count else { throw fail("\(tokens.count) tokens for \(rows.count) rows") }
        for (i, row) in rows.enumerated() {
            guard row >= 0, row < decodingRows else { throw fail("row \(row) of a decoding of \(decodingRows) rows") }
            guard i == 0 || row > rows[i - 1] else { throw fail("rows must be strictly increasing (\(rows[i - 1]), then \(row))") }
            guard going[row] else { throw fail("row \(row) has finished (it was left out of an earlier step)") }
        }
        var logits = [Float](repeating: .nan, count: rows.count * cachedInfo.vocabSize)
        let cRows = rows.map { UInt32($0) }
        let status = unsafe cRows.withUnsafeBufferPointer { rowBuffer in
            unsafe tokens.withUnsafeBufferPointer { tokenBuffer in
                unsafe logits.withUnsafeMutableBufferPointer {
                    unsafe function(
                        instance.handle, rowBuffer.baseAddress ?? UnsafePointer(emptyPointer()), UInt32(rows.count),
                        tokenBuffer.baseAddress ?? UnsafePointer(emptyPointer()), $0.baseAddress ?? emptyPointer())
                }
            }
        }
        try instance.check(status, "decode_step_rows")
        going = Array(repeating: false, count: decodingRows)
        for row in rows { going[row] = true }
        return logits
    }

    /// Whether the table has both kept-pass calls (ABI 1.5).
    private var hasKeptPass: Bool {
        unsafe table.struct_size >= UInt32(offset(\prism_backend_v1.backward_kept) + MemoryLayout<UnsafeRawPointer>.size)
            && table.logprobs_keep != nil && table.backward_kept != nil
    }
    /// Rows and stride of the pass logprobs_keep kept, for backward_kept's size check.
    private var keptShape: (rows: Int, stride: Int)?

    func logprobsKeepingPass(_ batch: TokenBatch, temperature: Float) throws -> [Float]? {
        guard hasKeptPass, let function = unsafe table.logprobs_keep else { return nil }
        keptShape = nil
        var out = [Float](repeating: 0, count: batch.rows * batch.stride)
        let status = unsafe withBatch(batch) { cBatch in
            unsafe out.withUnsafeMutableBufferPointer {
                unsafe function(instance.handle, cBatch, temperature, $0.baseAddress ?? emptyPointer())
            }
        }
        try instance.check(status, "logprobs_keep")
        keptShape = (batch.rows, batch.stride)
        return out
    }

    func backwardKeptPass(gradLogprobs: [Float]) throws {
        guard hasKeptPass, let function = unsafe table.backward_kept else { throw NoKeptPass() }
        let shape = keptShape
        keptShape = nil
        if let shape, gradLogprobs.count != shape.rows * shape.stride {
            throw PluginError(
                .callFailed, plugin: instance.library.id,
                reason: "backward_kept: \(gradLogprobs.count) gradients for a [\(shape.rows)][\(shape.stride)] batch")
        }
        let status = unsafe gradLogprobs.withUnsafeBufferPointer {
            unsafe function(instance.handle, $0.baseAddress ?? UnsafePointer(emptyPointer()))
        }
        // Without a kept pass the plugin must refuse (PRISM_E_STATE).
        try instance.check(status, "backward_kept")
        if shape == nil {
            throw PluginError(.invalidOutput, plugin: instance.library.id,
                              reason: "backward_kept succeeded with no pass kept (it must fail with PRISM_E_STATE)")
        }
    }

    /// Calls tokenize or tokenize_prompt, growing the buffer as it asks.
    private func tokens(
        of text: String,
        with function: @convention(c) (UnsafeMutableRawPointer?, prism_str, UnsafeMutablePointer<Int32>?, Int,
                                       UnsafeMutablePointer<Int>) -> prism_status,
        _ call: String
    ) throws -> [Int32] {
        var arena = unsafe TextArena()
        defer { unsafe arena.deallocate() }
        let str = unsafe arena.str(text)
        var capacity = text.utf8.count + 1
        while true {
            var tokens = [Int32](repeating: 0, count: capacity)
            var needed = 0
            let status = unsafe tokens.withUnsafeMutableBufferPointer {
                unsafe function(instance.handle, str, $0.baseAddress, capacity, &needed)
            }
            if status == PRISM_E_BUFFER_TOO_SMALL, needed > capacity {
                capacity = needed
                continue
            }
            try instance.check(status, call)
            guard needed <= capacity else { throw instance.invalidOutput(call, "\(needed) ids for a buffer of \(capacity)") }
            return Array(tokens.prefix(needed))
        }
    }

    func detokenize(_ tokens: [Int32]) throws -> String {
        var capacity = tokens.count * 4 + 16
        while true {
            var bytes = [UInt8](repeating: 0, count: capacity)
            var needed = 0
            let status = unsafe tokens.withUnsafeBufferPointer { tokenBuffer in
                unsafe bytes.withUnsafeMutableBytes { byteBuffer in
                    unsafe table.detokenize(
                        instance.handle, tokenBuffer.baseAddress, tokens.count,
                        byteBuffer.baseAddress?.assumingMemoryBound(to: CChar.self), capacity, &needed)
                }
            }
            if status == PRISM_E_BUFFER_TOO_SMALL, needed > capacity {
                capacity = needed
                continue
            }
            try instance.check(status, "detokenize")
            return String(decoding: bytes.prefix(needed), as: UTF8.self)
        }
    }

    func beginDecoding(_ prompts: TokenBatch) throws -> [Float] {
        var logits = [Float](repeating: .nan, count: prompts.rows * cachedInfo.vocabSize)
        let status = unsafe withBatch(prompts) { batch in
            unsafe logits.withUnsafeMutableBufferPointer {
                unsafe table.decode_begin(instance.handle, batch, $0.baseAddress ?? emptyPointer())
            }
        }
        try instance.check(status, "decode_begin")
        decodingRows = prompts.rows
        going = Array(repeating: true, count: prompts.rows)
        return logits
    }

    func decodeStep(_ tokens: [Int32]) throws -> [Float] {
        guard tokens.count == decodingRows else {
            throw PluginError(
                .callFailed, plugin: instance.library.id,
                reason: "decode_step: \(tokens.count) tokens for a decoding of \(decodingRows) rows")
        }
        var logits = [Float](repeating: .nan, count: tokens.count * cachedInfo.vocabSize)
        let status = unsafe tokens.withUnsafeBufferPointer { tokenBuffer in
            unsafe logits.withUnsafeMutableBufferPointer {
                unsafe table.decode_step(
                    instance.handle, tokenBuffer.baseAddress ?? UnsafePointer(emptyPointer()),
                    $0.baseAddress ?? emptyPointer())
            }
        }
        try instance.check(status, "decode_step")
        return logits
    }

    func logprobs(_ batch: TokenBatch, model: ModelKind, temperature: Float) throws -> [Float] {
        var out = [Float](repeating: 0, count: batch.rows * batch.stride)
        let status = unsafe withBatch(batch) { cBatch in
            unsafe out.withUnsafeMutableBufferPointer {
                unsafe table.logprobs(instance.handle, cBatch, model.rawValue, temperature, $0.baseAddress ?? emptyPointer())
            }
        }
        try instance.check(status, "logprobs")
        return out
    }

    func backward(_ batch: TokenBatch, temperature: Float, gradLogprobs: [Float]) throws {
        guard gradLogprobs.count == batch.rows * batch.stride else {
            throw PluginError(
                .callFailed, plugin: instance.library.id,
                reason: "backward: \(gradLogprobs.count) gradients for a [\(batch.rows)][\(batch.stride)] batch")
        }
        let status = unsafe withBatch(batch) { cBatch in
            unsafe gradLogprobs.withUnsafeBufferPointer {
                unsafe table.backward(instance.handle, cBatch, temperature, $0.baseAddress ?? UnsafePointer(emptyPointer()))
            }
        }
        try instance.check(status, "backward")
    }

    func optimizerStep(_ step: OptimizerStep) throws -> Double {
        var cStep = prism_optimizer_step(
            struct_size: UInt32(MemoryLayout<prism_optimizer_step>.size), reserved: 0,
            learning_rate: step.learningRate, beta1: step.beta1, beta2: step.beta2, epsilon: step.epsilon,
            weight_decay: step.weightDecay, max_grad_norm: step.maxGradNorm)
        var report = prism_optimizer_report(
            struct_size: UInt32(MemoryLayout<prism_optimizer_report>.size), reserved: 0, grad_norm: .nan)
        try instance.check(unsafe table.optimizer_step(instance.handle, &cStep, &report), "optimizer_step")
        return report.grad_norm
    }

    func zeroGrad() throws {
        try instance.check(unsafe table.zero_grad(instance.handle), "zero_grad")
    }

    func snapshotReference() throws {
        try instance.check(unsafe table.snapshot_reference(instance.handle), "snapshot_reference")
    }

    func save(to path: String) throws {
        var arena = unsafe TextArena()
        defer { unsafe arena.deallocate() }
        try instance.check(unsafe table.save(instance.handle, arena.str(path)), "save(\(path))")
    }

    func load(from path: String) throws {
        var arena = unsafe TextArena()
        defer { unsafe arena.deallocate() }
        try instance.check(unsafe table.load(instance.handle, arena.str(path)), "load(\(path))")
    }

    /// Runs `body` with a `prism_token_batch` view of `batch`.
    private func withBatch<R>(_ batch: TokenBatch, _ body: (UnsafePointer<prism_token_batch>) -> R) -> R {
        let lengths = batch.lengths.map { UInt32($0) }
        return unsafe batch.tokens.withUnsafeBufferPointer { tokenBuffer in
            unsafe lengths.withUnsafeBufferPointer { lengthBuffer in
                var cBatch = unsafe prism_token_batch(
                    tokens: tokenBuffer.baseAddress ?? UnsafePointer(emptyPointer()),
                    lengths: lengthBuffer.baseAddress ?? UnsafePointer(emptyPointer()),
                    rows: UInt32(batch.rows), stride: UInt32(batch.stride))
                return unsafe body(&cBatch)
            }
        }
    }
}
