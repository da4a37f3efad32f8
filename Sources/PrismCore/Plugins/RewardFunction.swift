/// One completion to score, with what the dataset knows about it.
public struct RewardSample: Sendable, Equatable {
    /// The prompt the completion answers.
    public var prompt: String
    /// The model's text, without the prompt.
    public var completion: String
    /// The reference final answer; empty when unknown.
    public var reference: String
    /// A JSON object from the dataset, or empty.
    public var metadataJSON: String

    public init(prompt: String, completion: String, reference: String, metadataJSON: String = "") {
        self.prompt = prompt
        self.completion = completion
        self.reference = reference
        self.metadataJSON = metadataJSON
    }
}

/// The verdict on one completion.
public struct RewardScore: Sendable, Equatable {
    /// The reward; NaN means "not applicable" (excluded from baselines).
    public var reward: Double
    /// Whether the completion is correct; classifies groups.
    public var correct: Bool

    public init(reward: Double, correct: Bool) {
        self.reward = reward
        self.correct = correct
    }
}

/// Scores a batch of completions (the ABI's `prism.reward/1`).
///
/// Calls on one value are never concurrent.
public protocol RewardFunction: AnyObject {
    /// Scores `batch`; the result has one element per sample, in order.
    /// - Throws: when the scorer fails; no partial result is returned.
    func score(_ batch: RewardBatch) throws -> [RewardScore]
}

extension RewardFunction {
    /// Scores `samples` (packs them into a ``RewardBatch`` first).
    public func score(_ samples: [RewardSample]) throws -> [RewardScore] {
        try score(RewardBatch(samples))
    }
}
