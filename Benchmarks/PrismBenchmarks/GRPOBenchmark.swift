import CPrismKernels
import Foundation
import PrismCore
import PrismHost
import PrismTrainer

/// One GRPO step of the transformer backend, end to end through the real
/// plugins (transformer, sampler, exact-answer reward): `prompts` prompts of
/// `promptTokens` tokens, `groupSize` completions each, at most `newTokens`
/// new tokens, one update (μ = 1, one minibatch, no KL). The strategy is NSR,
/// so every completion of an untrained model carries an advantage and every
/// group is trained (as in TRL's GRPOTrainer, which back-propagates all
/// rows). Reports the phases and the step's physical floor: its FLOPs at the
/// FMA peak measured in the same run.
public struct GRPOBenchmark {
    public struct Shape: Sendable {
        public var dModel = 128, layers = 2, heads = 4
        public var prompts = 8, groupSize = 8, promptTokens = 16, newTokens = 16
        /// The transformer's `share_prefixes` (Decisions #59).
        public var sharePrefixes = true
        public init() {}
        public var dFF: Int { 4 * dModel }
    }

    public var shape: Shape
    public var threads: Int
    public var steps: Int
    public var seed: UInt64

    public init(shape: Shape, threads: Int, steps: Int, seed: UInt64 = 1) {
        self.shape = shape
        self.threads = threads
        self.steps = steps
        self.seed = seed
    }

    public struct Result: Sendable {
        /// Best step of `steps` (after one warm-up step), in seconds, and its phases.
        public var step, generation, scoring, update: Double
        /// Median step time.
        public var medianStep: Double
        /// Generated tokens and completion tokens trained in the best step.
        public var generatedTokens: Int, trainedTokens: Int
        /// The step's FLOPs (generation + forward and backward of the update),
        /// a prompt's counted once per group (Decisions #57, #59).
        public var flops: Double
        /// The same counting every row's prompt (the issue's ≈ 6 GFLOP).
        public var flopsEveryPrompt: Double
        public var fmaPeak: Double
        public var floor: Double { flops / (fmaPeak * 1e9) }
        public var floorEveryPrompt: Double { flopsEveryPrompt / (fmaPeak * 1e9) }
    }

    /// The 32-token vocabulary the reference shape uses (29 characters + 3 special).
    static let vocab = "0123456789+-*=;#abcdefghijklm"

    public var modelConfig: String {
        """
        {"vocab": "\(Self.vocab)", "d_model": \(shape.dModel), "layers": \(shape.layers), "heads": \(shape.heads), \
        "d_ff": \(shape.dFF), "max_len": \(shape.promptTokens + shape.newTokens + 1), "seed": 1, "threads": \(threads), \
        "share_prefixes": \(shape.sharePrefixes)}
        """
    }

    /// The prompts: `promptTokens - 1` characters each (the BOS makes the rest).
    public func prompts() -> [Example] {
        var rng = RandomState(seed: seed)
        let characters = Array(Self.vocab)
        return (0..<max(1, shape.prompts)).map { _ in
            let text = String((0..<(shape.promptTokens - 1)).map { _ in characters[Int(rng.next() % UInt64(characters.count))] })
            return Example(prompt: text, answer: "-1")
        }
    }

    /// Matrix-multiply FLOPs of one token's forward pass, plus attention over `context` positions.
    func forwardFlops(context: Double) -> Double {
        let d = Double(shape.dModel), f = Double(shape.dFF), v = 32.0, l = Double(shape.layers)
        return 2 * (l * (4 * d * d + 2 * d * f) + d * v) + l * 4 * d * context
    }

    public func measure() throws -> Result {
        guard let backendPath = try PluginDiscovery.find(product: "PrismTransformer"),
              let samplerPath = try PluginDiscovery.find(product: "PrismSampler"),
              let rewardPath = try PluginDiscovery.find(product: "PrismExactAnswer")
        else { throw PluginError(.fileMissing, plugin: "libPrismTransformer.so", reason: "not found next to prism") }
        let backend = try PluginLibrary.load(backendPath).instantiate(config: modelConfig).computeBackend()
        let sampler = try PluginLibrary.load(samplerPath).instantiate().sampler()
        let reward = try PluginLibrary.load(rewardPath).instantiate().rewardFunction()
        pk_set_threads(Int32(threads))
        let peakBefore = pk_fma_peak_gflops(Int32(threads), 0.5)
        let policy = try Policy(backend: backend, sampler: sampler, temperature: 1)
        var settings = GRPOSettings()
        settings.groupSize = shape.groupSize
        settings.promptsPerStep = shape.prompts
        settings.maxNewTokens = shape.newTokens
        settings.strategy = try StrategyRegistry.builtIn.descriptor("nsr")!.strategy()
        settings.optimizer = OptimizerStep(learningRate: 1e-4)
        let grpo = GRPOStep(policy: policy, reward: reward, judge: nil, settings: settings)
        let examples = prompts()
        var rng = RandomState(seed: seed)
        var cursor = 0
        var runs: [StepMetrics] = []
        for step in 0...max(1, steps) {
            let (metrics, _) = try grpo.run(step: step + 1, next: {
                defer { cursor += 1 }
                return examples[cursor % examples.count]
            }, rng: &rng)
            if step > 0 { runs.append(metrics) }  // the first warms up (allocations, thread pool)
        }
        let best = runs.min { $0[.timeStepS]! < $1[.timeStepS]! }!
        let sorted = runs.map { $0[.timeStepS]! }.sorted()
        let rows = Double(shape.prompts * shape.groupSize)
        let generated = best[.tokensGenerated] ?? 0, trained = best[.tokens] ?? 0
        let p = Double(shape.promptTokens)
        // Prefill of each distinct prompt (a group's rows share theirs), one
        // decoding step per generated token, and forward + backward (2x)
        // over the update's tokens: each distinct prompt once (the backend
        // computes a shared prefix once), every completion token.
        let distinct = Double(shape.prompts) * p
        let prefill = distinct * forwardFlops(context: p / 2)
        let decode = generated * forwardFlops(context: p + Double(shape.newTokens) / 2)
        let perToken = 3 * forwardFlops(context: (p + Double(shape.newTokens)) / 2)
        let update = (distinct + trained) * perToken
        let everyPrompt = (rows * p) * (forwardFlops(context: p / 2) + perToken) + decode + trained * perToken
        return Result(
            step: best[.timeStepS]!, generation: best[.timeGenerationS]!, scoring: best[.timeScoringS]!,
            update: best[.timeUpdateS]!, medianStep: sorted[sorted.count / 2], generatedTokens: Int(generated),
            trainedTokens: Int(trained), flops: prefill + decode + update, flopsEveryPrompt: everyPrompt,
            fmaPeak: peakGFLOPS(threads: threads, before: peakBefore))
    }

    /// A readable report, or one JSON object with `json`.
    public func run(json: Bool) throws -> String {
        let r = try measure()
        if json {
            return """
                {"threads": \(threads), "d_model": \(shape.dModel), "layers": \(shape.layers), "heads": \(shape.heads), \
                "prompts": \(shape.prompts), "group_size": \(shape.groupSize), "prompt_tokens": \(shape.promptTokens), \
                "new_tokens": \(shape.newTokens), "step_s": \(r.step), "median_step_s": \(r.medianStep), \
                "generation_s": \(r.generation), "scoring_s": \(r.scoring), "update_s": \(r.update), \
                "generated_tokens": \(r.generatedTokens), "trained_tokens": \(r.trainedTokens), "flops": \(r.flops), \
                "flops_every_prompt": \(r.flopsEveryPrompt), "fma_peak_gflops": \(r.fmaPeak), "floor_s": \(r.floor), \
                "floor_every_prompt_s": \(r.floorEveryPrompt)}
                """
        }
        func ms(_ s: Double) -> String { String(format: "%8.1f ms", s * 1000) }
        return [
            "GRPO step, transformer backend, \(threads) thread(s), kernels: \(String(cString: pk_kernels_name()))",
            "config: model \(modelConfig.replacingOccurrences(of: "\n", with: ""))",
            "        \(shape.prompts) prompts x \(shape.groupSize) completions, prompt \(shape.promptTokens) tokens, "
                + "<= \(shape.newTokens) new, strategy nsr (every group trained), mu 1, 1 minibatch, no KL",
            "step (best of \(steps))  \(ms(r.step))   median \(ms(r.medianStep))",
            "  generation          \(ms(r.generation))   (\(r.generatedTokens) tokens)",
            "  scoring             \(ms(r.scoring))",
            "  update              \(ms(r.update))   (\(r.trainedTokens) completion tokens)",
            String(format: "physical floor      %8.1f ms   (%.2f GFLOP at the measured FMA peak %.1f GFLOP/s); step = %.2fx floor",
                   r.floor * 1000, r.flops / 1e9, r.fmaPeak, r.step / r.floor),
            String(format: "  every row's prompt %8.1f ms   (%.2f GFLOP, the count of issue #16); step = %.2fx that",
                   r.floorEveryPrompt * 1000, r.flopsEveryPrompt / 1e9, r.step / r.floorEveryPrompt),
        ].joined(separator: "\n")
    }
}
