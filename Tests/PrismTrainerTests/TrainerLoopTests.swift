import Foundation
import PrismCore
import PrismHost
import PrismTestSupport
import PrismTrainer
import Testing

/// The training pieces through the real plugins (dlopen): arithmetic data,
/// SFT, GRPO steps with every strategy preset, and evaluation.
@Suite("Trainer loop")
struct TrainerLoopTests {
    static let model = #"{"vocab": "0123456789+-*=;#", "d_model": 32, "layers": 2, "heads": 4, "d_ff": 64, "max_len": 48, "seed": 3}"#

    /// One online step with prompts taken from `problems` in turn.
    static func run(_ step: GRPOStep, _ problems: [Example], seed: UInt64) throws -> (StepMetrics, [SampleRecord]) {
        var rng = RandomState(seed: seed)
        var cursor = 0
        return try step.run(step: 1, next: {
            defer { cursor += 1 }
            return problems[cursor % problems.count]
        }, rng: &rng)
    }

    static func policy(sampler config: String = "{}") throws -> Policy {
        let backend = try PluginLibrary.load(TestSupport.plugin("PrismTransformer")).instantiate(config: model).computeBackend()
        let sampler = try PluginLibrary.load(TestSupport.plugin("PrismSampler")).instantiate(config: config).sampler()
        return try Policy(backend: backend, sampler: sampler, temperature: 1)
    }

    @Test func arithmeticProblemsAreConsistentAndJudgedRight() throws {
        let task = ArithmeticTask(terms: 2...4, digits: 1...3, operators: ["+", "-", "*"])
        let examples = task.examples(count: 200, seed: 1)
        #expect(examples == task.examples(count: 200, seed: 1))
        #expect(examples != task.examples(count: 200, seed: 2))
        let judge = try PluginLibrary.load(TestSupport.plugin("PrismStepJudge")).instantiate().feedbackGenerator()
        let reward = try PluginLibrary.load(TestSupport.plugin("PrismExactAnswer")).instantiate().rewardFunction()
        for example in examples.prefix(50) {
            #expect(example.steps.count + 1 == Int(example.prompt.filter { "+-*".contains($0) }.count) + 1)
            let feedback = try judge.assess(FeedbackGroup(
                prompt: example.prompt, reference: example.answer, completions: [example.solution],
                rewards: [1], correct: [true]))
            #expect(feedback.firstErrors == [nil], "\(example.solution)")
        }
        let scores = try reward.score(examples.map { RewardSample(prompt: $0.prompt, completion: $0.solution, reference: $0.answer) })
        #expect(scores.allSatisfy { $0.correct })
    }

    /// The judge's byte offsets become token indices through the backend's
    /// own detokenizer: the token holding the byte, and at the end of the
    /// text the end token (or the length, without one).
    /// The word problems' own solutions are right by the lines judge and the
    /// "Answer:" reward; a story never goes below zero; one wrong number is
    /// found in its line.
    @Test func wordProblemsAreConsistentAndJudgedRight() throws {
        let task = WordProblemTask(terms: 2...4, digits: 1...2, operators: ["+", "-", "*"])
        let examples = task.examples(count: 100, seed: 1)
        #expect(examples == task.examples(count: 100, seed: 1))
        let judge = try PluginLibrary.load(TestSupport.plugin("PrismStepJudge")).instantiate(config: #"{"format": "lines"}"#)
            .feedbackGenerator()
        let reward = try PluginLibrary.load(TestSupport.plugin("PrismExactAnswer"))
            .instantiate(config: #"{"marker": "Answer:", "require_marker": true}"#).rewardFunction()
        for example in examples {
            #expect(example.solution.hasSuffix("\nAnswer: \(example.answer)") && example.prompt.hasSuffix(WordProblemTask.instruction))
            #expect(example.metadata["format"] == .string("lines"))
            let values = example.steps.map { Int($0.split(separator: "=").last!.trimmingCharacters(in: .whitespaces))! }
            #expect(values.allSatisfy { $0 >= 0 }, "\(example.steps)")
            var broken = example.solution.split(separator: "\n").map(String.init)
            broken[0] = broken[0] + "1"  // the first result gets a digit too many
            let feedback = try judge.assess(FeedbackGroup(
                prompt: example.prompt, reference: example.answer, referenceSteps: example.steps,
                completions: [example.solution, broken.joined(separator: "\n")], rewards: [1, 0], correct: [true, false]))
            #expect(feedback.firstErrors == [nil, 0], "\(example.solution)")
        }
        let scores = try reward.score(examples.map { RewardSample(prompt: $0.prompt, completion: $0.solution, reference: $0.answer) })
        #expect(scores.allSatisfy { $0.correct })
    }

    @Test func firstErrorBytesAreMappedToTokens() throws {
        let policy = try Self.policy()
        let text = "12+34=46;46+7=52;#52"
        let tokens = try policy.backend.tokenize(text)
        let eos = Int32(try #require(policy.info.eosToken))
        #expect(tokens.count == text.utf8.count)  // one character a token
        for offset in [0, 1, 9, 16, 19] {
            #expect(try policy.tokenIndex(ofByte: offset, in: tokens + [eos]) == offset)
        }
        #expect(try policy.tokenIndex(ofByte: 20, in: tokens + [eos]) == 20)  // the end token
        #expect(try policy.tokenIndex(ofByte: 20, in: tokens) == 20)
        #expect(try policy.tokenIndex(ofByte: 0, in: []) == 0)
    }

    /// SGPO with the prefix rule through the real judge: every re-rewarded
    /// answer's first error is located (ABI 1.2 spans mapped to tokens).
    @Test func sgpoPrefixLocatesEveryFirstError() throws {
        let policy = try Self.policy()
        let reward = try PluginLibrary.load(TestSupport.plugin("PrismExactAnswer")).instantiate().rewardFunction()
        let judge = try PluginLibrary.load(TestSupport.plugin("PrismStepJudge")).instantiate().feedbackGenerator()
        var settings = GRPOSettings()
        settings.groupSize = 4
        settings.promptsPerStep = 4
        settings.maxNewTokens = 24
        settings.strategy = try StrategyDescriptor.sgpo.strategy(["credit": "prefix"])
        let step = GRPOStep(policy: policy, reward: reward, judge: judge, settings: settings)
        let hard = ArithmeticTask(terms: 3...3, digits: 2...2).examples(count: 4, seed: 9)
        let (metrics, _) = try Self.run(step, hard, seed: 2)
        #expect(metrics[.responsesDiversified]! > 0)
        #expect(metrics[.feedbackUnlocated] == 0)
    }

    @Test func jsonlRoundTripsAndNamesTheBadLine() throws {
        let directory = try TestSupport.temporaryDirectory("jsonl")
        let path = directory.appendingPathComponent("data.jsonl").path
        let examples = ArithmeticTask().examples(count: 5, seed: 4)
        try JSONL.write(examples, to: path)
        #expect(try JSONL.read(Example.self, from: path) == examples)
        var text = try String(contentsOfFile: path, encoding: .utf8)
        text += "{\"prompt\": \"1+1=\"}\n{not json\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        #expect { _ = try JSONL.read(Example.self, from: path) } throws: { error in
            "\(error)" == "\(path):6: missing key 'answer'"
        }
    }

    @Test func supervisedWarmStartThenGRPOStepsWithEveryStrategy() throws {
        let policy = try Self.policy()
        let easy = ArithmeticTask(terms: 2...2, digits: 1...1).examples(count: 64, seed: 5)
        var sft = SupervisedStep(policy: policy, optimizer: OptimizerStep(learningRate: 3e-3))
        sft.optimizer.weightDecay = 0
        let first = try sft.step(easy)
        var last = first
        for _ in 0..<40 { last = try sft.step(easy) }
        #expect(last < 0.6 * first)

        let reward = try PluginLibrary.load(TestSupport.plugin("PrismExactAnswer")).instantiate().rewardFunction()
        let judge = try PluginLibrary.load(TestSupport.plugin("PrismStepJudge")).instantiate().feedbackGenerator()
        let hard = ArithmeticTask(terms: 3...3, digits: 1...1).examples(count: 200, seed: 6)
        var rng = RandomState(seed: 1)
        for name in StrategyRegistry.builtIn.names {
            var settings = GRPOSettings()
            settings.groupSize = 4
            settings.promptsPerStep = 4
            settings.maxNewTokens = 24
            settings.strategy = try StrategyRegistry.builtIn.descriptor(name)!.strategy()
            settings.loss.klBeta = name == "grpo" ? 0.04 : 0
            let step = GRPOStep(policy: policy, reward: reward, judge: judge, settings: settings)
            var cursor = 0
            let (metrics, samples) = try step.run(step: 1, next: {
                defer { cursor += 1 }
                return hard[cursor % hard.count]
            }, rng: &rng)
            let total = metrics["groups/total"]!
            let kinds = ["groups/all_negative", "groups/all_positive", "groups/mixed", "groups/not_applicable"]
                .map { metrics[$0]! }.reduce(0, +)
            #expect(total == kinds, "\(name)")
            // Every generated group is kept, dropped or replaced: 4 prompts
            // plus one per replacement = kept + dropped + replaced.
            #expect(total + metrics["groups/dropped"]! == 4, "\(name)")
            #expect(metrics["tokens/generated"]! > 0)
            #expect(metrics["accuracy"] != nil)
            #expect(!samples.isEmpty || total == 0)
            if name == "sgpo" {
                #expect(metrics["groups/diversified"]! <= metrics["groups/all_negative"]!)
            }
        }
    }

    /// 4 prompts x 4 completions of <= 12 tokens, NSR (every wrong answer
    /// has advantage -1, so there is always a signal), learning rate 0.05.
    static func nsrSettings(updates: Int, minibatches: Int) throws -> GRPOSettings {
        var settings = GRPOSettings()
        settings.groupSize = 4
        settings.promptsPerStep = 4
        settings.maxNewTokens = 12
        settings.strategy = try StrategyRegistry.builtIn.descriptor("nsr")!.strategy()
        settings.optimizer = OptimizerStep(learningRate: 0.05)
        settings.updatesPerBatch = updates
        settings.minibatches = minibatches
        return settings
    }

    /// With μ > 1 the later passes see a policy that moved since sampling:
    /// the ratio leaves 1 and the clip engages. With μ = 1 it never does.
    @Test func severalUpdatesPerBatchMakeTheClipEngage() throws {
        let reward = try PluginLibrary.load(TestSupport.plugin("PrismExactAnswer")).instantiate().rewardFunction()
        let problems = ArithmeticTask(terms: 3...3, digits: 1...1).examples(count: 16, seed: 9)
        func step(updates: Int, minibatches: Int) throws -> StepMetrics {
            let settings = try Self.nsrSettings(updates: updates, minibatches: minibatches)
            let grpo = GRPOStep(policy: try Self.policy(), reward: reward, judge: nil, settings: settings)
            return try Self.run(grpo, problems, seed: 2).0
        }
        let once = try step(updates: 1, minibatches: 1)
        #expect(once["updates"] == 1 && once["loss/clip_fraction"] == 0 && once["loss/approx_kl"] == 0)
        #expect(once["ratio/mean"] == 1)
        let four = try step(updates: 4, minibatches: 1)
        #expect(four["updates"] == 4)
        #expect(four["loss/clip_fraction"]! > 0, "\(four.entries)")
        #expect(four["clip_ratio/low"]! > 0)  // negative advantages: the low clip
        #expect(four["loss/approx_kl"]! > 0)
        let split = try step(updates: 1, minibatches: 2)
        #expect(split["updates"] == 2 && split["loss/approx_kl"]! > 0)
        // The same first pass: the batch and its sampled completions agree.
        #expect(four["tokens"] == once["tokens"] && split["tokens"] == once["tokens"])
    }

    /// The backend calls an update makes, by name, around a real backend;
    /// `keeps: false` hides the kept pass (a backend before ABI 1.5),
    /// `decodesRows: false` decode_step_rows (before 1.6).
    final class CountingBackend: ComputeBackend {
        let inner: any ComputeBackend
        let keeps: Bool
        let decodesRows: Bool
        var calls: [String: Int] = [:]
        var logprobRows: [Int] = []
        /// Decoding steps through decode_step_rows, and the rows computed by
        /// all decoding steps after the prompt's.
        var rowSteps = 0, decodedRows = 0
        init(_ inner: any ComputeBackend, keeps: Bool, decodesRows: Bool = true) {
            self.inner = inner
            self.keeps = keeps
            self.decodesRows = decodesRows
        }
        private func count(_ name: String) { calls[name, default: 0] += 1 }
        func info() throws -> BackendInfo { try inner.info() }
        func tokenize(_ text: String) throws -> [Int32] { try inner.tokenize(text) }
        func tokenizePrompt(_ text: String) throws -> [Int32]? { try inner.tokenizePrompt(text) }
        func detokenize(_ tokens: [Int32]) throws -> String { try inner.detokenize(tokens) }
        func beginDecoding(_ prompts: TokenBatch) throws -> [Float] { try inner.beginDecoding(prompts) }
        func decodeStep(_ tokens: [Int32]) throws -> [Float] {
            decodedRows += tokens.count
            return try inner.decodeStep(tokens)
        }
        func decodeStep(rows: [Int], tokens: [Int32]) throws -> [Float]? {
            guard decodesRows else { return nil }
            rowSteps += 1
            decodedRows += rows.count
            return try inner.decodeStep(rows: rows, tokens: tokens)
        }
        func logprobs(_ batch: TokenBatch, model: ModelKind, temperature: Float) throws -> [Float] {
            count(model == .policy ? "logprobs" : "logprobs(reference)")
            logprobRows.append(batch.rows)
            return try inner.logprobs(batch, model: model, temperature: temperature)
        }
        func backward(_ batch: TokenBatch, temperature: Float, gradLogprobs: [Float]) throws {
            count("backward")
            try inner.backward(batch, temperature: temperature, gradLogprobs: gradLogprobs)
        }
        func logprobsKeepingPass(_ batch: TokenBatch, temperature: Float) throws -> [Float]? {
            guard keeps else { return nil }
            count("logprobs_keep")
            return try inner.logprobsKeepingPass(batch, temperature: temperature)
        }
        func backwardKeptPass(gradLogprobs: [Float]) throws {
            count("backward_kept")
            try inner.backwardKeptPass(gradLogprobs: gradLogprobs)
        }
        func optimizerStep(_ step: OptimizerStep) throws -> Double {
            count("optimizer_step")
            return try inner.optimizerStep(step)
        }
        func zeroGrad() throws { try inner.zeroGrad() }
        func snapshotReference() throws { try inner.snapshotReference() }
        func save(to path: String) throws { try inner.save(to: path) }
        func load(from path: String) throws { try inner.load(from: path) }
    }

    /// No wasted forward: with the kept pass (ABI 1.5) an update at μ = 1 is
    /// one forward and one backward per minibatch, the old log-probs cost
    /// nothing (generation's with several minibatches), reference log-probs
    /// are asked only with KL; the weights end bit for bit where the
    /// fallback (log-probs, then a backward with its own forward) puts them.
    @Test func anUpdateSpendsOneForwardPerMinibatch() throws {
        let reward = try PluginLibrary.load(TestSupport.plugin("PrismExactAnswer")).instantiate().rewardFunction()
        let problems = ArithmeticTask(terms: 3...3, digits: 1...1).examples(count: 16, seed: 9)
        func step(keeps: Bool, updates: Int = 1, minibatches: Int = 1, kl: Double = 0)
            throws -> (StepMetrics, CountingBackend, [Float])
        {
            let plain = try Self.policy()
            let backend = CountingBackend(plain.backend, keeps: keeps)
            let policy = try Policy(backend: backend, sampler: plain.sampler, temperature: 1)
            var settings = try Self.nsrSettings(updates: updates, minibatches: minibatches)
            settings.loss.klBeta = kl
            let grpo = GRPOStep(policy: policy, reward: reward, judge: nil, settings: settings)
            let metrics = try Self.run(grpo, problems, seed: 2).0
            let probe = TokenBatch(sequences: [[1, 4, 5, 6, 7, 8]], pad: 0)
            return (metrics, backend, try plain.backend.logprobs(probe, model: .policy, temperature: 1))
        }
        let (fused, fusedCalls, fusedAfter) = try step(keeps: true)
        #expect(fusedCalls.calls == ["logprobs_keep": 1, "backward_kept": 1, "optimizer_step": 1], "\(fusedCalls.calls)")
        #expect(fused["ratio/mean"] == 1 && fused["loss/approx_kl"] == 0)
        let (fallback, fallbackCalls, fallbackAfter) = try step(keeps: false)
        #expect(fallbackCalls.calls == ["logprobs": 1, "backward": 1, "optimizer_step": 1], "\(fallbackCalls.calls)")
        #expect(fusedAfter == fallbackAfter && fused["loss"] == fallback["loss"] && fused["grad_norm"] == fallback["grad_norm"])
        // Two minibatches: each one forward; the old log-probs from generation, never a forward of the whole batch.
        let (split, splitCalls, _) = try step(keeps: true, minibatches: 2)
        #expect(splitCalls.calls == ["logprobs_keep": 2, "backward_kept": 2, "optimizer_step": 2], "\(splitCalls.calls)")
        #expect(split["ratio/mean"]! > 0.99 && split["ratio/mean"]! < 1.01 && split["loss/approx_kl"]! > 0)
        // μ = 2: the old log-probs need one forward of the batch, before the first update.
        let (_, twiceCalls, _) = try step(keeps: true, updates: 2)
        #expect(twiceCalls.calls == ["logprobs": 1, "logprobs_keep": 2, "backward_kept": 2, "optimizer_step": 2], "\(twiceCalls.calls)")
        // KL on: the reference's log-probs, once.
        let (_, klCalls, _) = try step(keeps: true, kl: 0.04)
        #expect(klCalls.calls["logprobs(reference)"] == 1 && klCalls.calls["logprobs"] == nil, "\(klCalls.calls)")
    }

    /// Finished completions are decoded no more (ABI 1.6 decode_step_rows),
    /// and generation is bit for bit what it is when the backend decodes
    /// every row: the same tokens, log-probs and random stream.
    @Test func finishedCompletionsAreDecodedNoMore() throws {
        let prompts = ArithmeticTask(terms: 2...2, digits: 1...1).examples(count: 6, seed: 5).map(\.prompt)
        func generate(decodesRows: Bool) throws -> ([[Completion]], CountingBackend, UInt64) {
            let plain = try Self.policy()
            let backend = CountingBackend(plain.backend, keeps: true, decodesRows: decodesRows)
            let policy = try Policy(backend: backend, sampler: plain.sampler, temperature: 1)
            var rng = RandomState(seed: 11)
            let out = try policy.generate(prompts, count: 8, maxNewTokens: 24, recordLogprobs: true, rng: &rng)
            return (out, backend, rng.next())
        }
        let (rows, rowsBackend, rowsAfter) = try generate(decodesRows: true)
        let (every, everyBackend, everyAfter) = try generate(decodesRows: false)
        let all = rows.flatMap { $0 }
        let finishedEarly = all.filter { $0.finished && $0.tokens.count < 24 }.count
        #expect(finishedEarly > 0 && finishedEarly < all.count, "\(finishedEarly) of \(all.count) finished early")
        #expect(rows == every && rowsAfter == everyAfter)
        #expect(rowsBackend.rowSteps > 0 && everyBackend.rowSteps == 0)
        // Each completion is decoded once per token after its first, bar the last step.
        let needed = all.map { $0.finished ? $0.tokens.count - 1 : min($0.tokens.count, 23) }.reduce(0, +)
        #expect(rowsBackend.decodedRows == needed && everyBackend.decodedRows > needed,
                "\(rowsBackend.decodedRows) and \(everyBackend.decodedRows) rows decoded, \(needed) needed")
    }

    /// A strategy plugin that fails is counted and the step goes on: a failed
    /// judge question leaves the group unjudged, a failed disposition drops
    /// the group, failed or non-finite advantages skip the update.
    @Test(arguments: ["FAIL_WANTS", "FAIL_DISPOSE", "FAIL_ADVANTAGES", "INF_ADVANTAGE", "NONE"])
    func aFailingStrategyPluginIsCountedAndTheStepGoesOn(_ failure: String) throws {
        let dir = try TestSupport.temporaryDirectory("failing-strategy")
        let path = try TestSupport.compilePlugin([TestSupport.fixture("failing_strategy.c")], name: "failing_\(failure)",
                                                 defines: [failure], in: dir)
        var settings = GRPOSettings()
        settings.groupSize = 2
        settings.promptsPerStep = 3
        settings.maxNewTokens = 6
        settings.strategy = try PluginLibrary.load(path).instantiate().groupStrategy().strategy
        let reward = try PluginLibrary.load(TestSupport.plugin("PrismExactAnswer")).instantiate().rewardFunction()
        let judge = try PluginLibrary.load(TestSupport.plugin("PrismStepJudge")).instantiate().feedbackGenerator()
        let step = GRPOStep(policy: try Self.policy(), reward: reward, judge: judge, settings: settings)
        let problems = ArithmeticTask(terms: 2...2, digits: 1...1).examples(count: 3, seed: 4)
        let (metrics, _) = try Self.run(step, problems, seed: 1)
        let errors = metrics[.strategyErrors]!
        switch failure {
        case "FAIL_WANTS":
            #expect(errors == 3 && metrics[.feedbackJudgedTokens] == 0 && metrics[.updates] == 1)
        case "FAIL_DISPOSE":
            #expect(errors == 3 && metrics[.groupsDropped] == 3 && metrics[.groupsTotal] == 0 && metrics[.updates] == nil)
        case "FAIL_ADVANTAGES", "INF_ADVANTAGE":
            #expect(errors == 1 && metrics[.updates] == nil)
            #expect(metrics[.groupsTotal] == 3 && metrics[.groupsZeroAdvantage] == 3)
            #expect(step.lastStrategyError?.contains("org.prism.test.failing-strategy") == true)
        default:
            #expect(errors == 0 && metrics[.feedbackJudgedTokens]! > 0 && metrics[.updates] == 1)
            #expect(metrics[.advantagesMax] == -1)
        }
    }

    @Test func evaluationMeasuresAccuracyRTSAndPassAtK() throws {
        let greedy = try Self.policy(sampler: #"{"greedy": true}"#)
        let sampled = try Policy(backend: greedy.backend, sampler: try PluginLibrary.load(TestSupport.plugin("PrismSampler"))
            .instantiate().sampler(), temperature: 1)
        let reward = try PluginLibrary.load(TestSupport.plugin("PrismExactAnswer")).instantiate().rewardFunction()
        let judge = try PluginLibrary.load(TestSupport.plugin("PrismStepJudge")).instantiate().feedbackGenerator()
        let examples = ArithmeticTask(terms: 2...2, digits: 1...1).examples(count: 20, seed: 8)
        let result = try Evaluation.run(examples: examples, greedy: greedy, sampled: sampled, k: 4, reward: reward,
                                        judge: judge, maxNewTokens: 16, seed: 1)
        #expect(result.problems == 20)
        #expect((0...1).contains(result.accuracy) && (0...1).contains(result.passAtK))
        #expect(result.passAtK >= 0 && result.k == 4)
        #expect((0...1).contains(result.meanRTS))
    }
}
