import PrismCore

/// Supervised fine-tuning on worked solutions: maximise the log-likelihood
/// of `solution + EOS` after `[bos] + prompt` (prompt tokens carry no loss).
public struct SupervisedStep {
    public let policy: Policy
    public var optimizer: OptimizerStep

    public init(policy: Policy, optimizer: OptimizerStep) {
        self.policy = policy
        self.optimizer = optimizer
    }

    /// One optimizer step on `examples`.
    /// - Parameter measure: also compute the loss (one more forward pass).
    /// - Returns: the mean token NLL before the step, or NaN when not measured.
    @discardableResult
    public func step(_ examples: [Example], measure: Bool = true) throws -> Double {
        var sequences: [[Int32]] = []
        var promptLengths: [Int] = []
        let eos = policy.info.eosToken.map { [Int32($0)] } ?? []
        for example in examples {
            let prompt = try policy.promptTokens(example.prompt)
            promptLengths.append(prompt.count)
            sequences.append(prompt + (try policy.backend.tokenize(example.solution)) + eos)
        }
        let batch = TokenBatch(sequences: sequences, pad: Int32(policy.info.padToken ?? 0))
        let targets = zip(sequences, promptLengths).map { $0.count - $1 }.reduce(0, +)
        guard targets > 0 else { return 0 }
        var grad = [Float](repeating: 0, count: batch.rows * batch.stride)
        for (r, start) in promptLengths.enumerated() {
            for t in start..<sequences[r].count { grad[r * batch.stride + t] = -1 / Float(targets) }
        }
        var nll = Double.nan
        if measure {
            let logprobs = try policy.backend.logprobs(batch, model: .policy, temperature: 1)
            nll = -zip(logprobs, grad).reduce(0.0) { $0 + (($1.1 != 0) ? Double($1.0) : 0) } / Double(targets)
        }
        try policy.backend.backward(batch, temperature: 1, gradLogprobs: grad)
        _ = try policy.backend.optimizerStep(optimizer)
        return nll
    }

    /// `steps` optimizer steps on batches of `batchSize` examples drawn at
    /// random (with replacement) from `examples`.
    /// - Parameters:
    ///   - log: called with a line on the first, last and every tenth step.
    ///   - shouldStop: asked after each step; true throws (nothing is saved).
    public func run(_ examples: [Example], steps: Int, batchSize: Int, seed: UInt64,
                    log: (String) -> Void, shouldStop: () -> Bool = { false }) throws {
        guard steps > 0 else { return }
        guard !examples.isEmpty else { throw TrainerError("supervised warm-start: no examples") }
        var rng = RandomState(seed: seed)
        for n in 1...steps {
            let batch = (0..<batchSize).map { _ in examples[Int(rng.next() % UInt64(examples.count))] }
            let logging = n == 1 || n % max(1, steps / 10) == 0 || n == steps
            let loss = try step(batch, measure: logging)
            if logging { log("sft step \(n)/\(steps)  loss \(String(format: "%.4f", loss))") }
            if shouldStop() { throw Cancelled("warm start") }
        }
    }
}

extension SupervisedStep {
    /// The supervised warm start a config describes: `steps` optimizer steps
    /// (default `sft.steps`) of `sft.batch_size` examples with the config's
    /// optimizer at `sft.lr`. The one implementation behind `prism sft`,
    /// `sft.steps` in `prism train`, the demo and the study.
    public static func warmStart(_ examples: [Example], policy: Policy, config: ConfigFile, steps: Int? = nil,
                                 seed: UInt64, log: (String) -> Void, shouldStop: () -> Bool = { false }) throws {
        var optimizer = config.optimizer
        optimizer.learningRate = config.double("sft.lr")
        try SupervisedStep(policy: policy, optimizer: optimizer).run(
            examples, steps: steps ?? config.int("sft.steps"), batchSize: config.int("sft.batch_size"), seed: seed,
            log: log, shouldStop: shouldStop)
    }
}
