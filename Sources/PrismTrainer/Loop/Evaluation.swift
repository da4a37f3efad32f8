import PrismCore

/// Held-out evaluation: greedy accuracy, the judge's mean step score (RTS)
/// of the greedy answers, their process-verified accuracy, and pass@k from
/// k sampled answers per problem.
public struct Evaluation: Sendable, Equatable {
    public var problems: Int
    /// Share of problems whose greedy answer is correct.
    public var accuracy: Double
    /// Standard error of `accuracy` (binomial).
    public var accuracyStandardError: Double
    /// Mean judge score of the greedy answers (NaN without a judge).
    public var meanRTS: Double
    /// Share of problems whose greedy answer the judge finds right at every
    /// step and that ends with the end token right after the answer (NaN
    /// without a judge). With the arithmetic judge's default
    /// `after_answer: error`, text after the answer makes it wrong.
    public var processAccuracy: Double
    /// k, and the share of problems with at least one correct answer among k samples (0 when k = 0).
    public var k: Int
    public var passAtK: Double

    /// Evaluates `policy` on `examples`.
    /// - Parameters:
    ///   - greedy: the policy's backend with a greedy sampler.
    ///   - sampled: the same backend with the training sampler, for pass@k (nil: skip).
    public static func run(
        examples: [Example], greedy: Policy, sampled: Policy?, k: Int, reward: any RewardFunction,
        judge: (any FeedbackGenerator)?, maxNewTokens: Int, seed: UInt64, batchSize: Int = 64
    ) throws -> Evaluation {
        var rng = RandomState(seed: seed)
        var correct = 0, passed = 0, verified = 0
        var rts: [Double] = []
        for start in stride(from: 0, to: examples.count, by: batchSize) {
            let chunk = Array(examples[start..<min(start + batchSize, examples.count)])
            let answers = try greedy.generate(chunk.map(\.prompt), count: 1, maxNewTokens: maxNewTokens, rng: &rng)
            let scores = try reward.score(zip(chunk, answers).map {
                RewardSample(prompt: $0.prompt, completion: $1[0].text, reference: $0.answer, metadataJSON: $0.metadataJSON)
            })
            correct += scores.filter(\.correct).count
            if let judge {
                for (example, answer) in zip(chunk, answers) {
                    let feedback = try judge.assess(FeedbackGroup(
                        prompt: example.prompt, reference: example.answer, referenceSteps: example.steps,
                        metadataJSON: example.metadataJSON, completions: [answer[0].text], rewards: [0], correct: [false]))
                    if let score = feedback.scores.first, !score.isNaN { rts.append(score) }
                    if feedback.scores.first == 1, feedback.firstErrors.first == .some(nil), answer[0].finished {
                        verified += 1
                    }
                }
            }
            if let sampled, k > 0 {
                let samples = try sampled.generate(chunk.map(\.prompt), count: k, maxNewTokens: maxNewTokens, rng: &rng)
                for (example, group) in zip(chunk, samples) {
                    let verdicts = try reward.score(group.map {
                        RewardSample(prompt: example.prompt, completion: $0.text, reference: example.answer)
                    })
                    if verdicts.contains(where: \.correct) { passed += 1 }
                }
            }
        }
        let n = Double(max(examples.count, 1))
        let accuracy = Double(correct) / n
        return Evaluation(
            problems: examples.count, accuracy: accuracy,
            accuracyStandardError: (accuracy * (1 - accuracy) / n).squareRoot(),
            meanRTS: rts.isEmpty ? .nan : rts.reduce(0, +) / Double(rts.count),
            processAccuracy: judge == nil ? .nan : Double(verified) / n,
            k: sampled == nil ? 0 : k, passAtK: sampled == nil ? 0 : Double(passed) / n)
    }
}

extension StepMetrics {
    /// `eval/accuracy`, `eval/accuracy_stderr`, `eval/process_accuracy`,
    /// `eval/rts` and `eval/pass_at_k`.
    public mutating func record(_ evaluation: Evaluation) {
        set(.evalAccuracy, evaluation.accuracy)
        set(.evalAccuracyStderr, evaluation.accuracyStandardError)
        set(.evalProcessAccuracy, evaluation.processAccuracy)
        set(.evalRts, evaluation.meanRTS)
        set(.evalPassAtK, evaluation.passAtK)
    }
}
