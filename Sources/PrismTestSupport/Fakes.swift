import PrismCore

/// An in-memory reward: 1 when the completion ends with "#" + reference.
/// Counts its calls, so tests can check how the trainer batches.
public final class FakeReward: RewardFunction {
    public private(set) var calls = 0
    public init() {}

    public func score(_ batch: RewardBatch) -> [RewardScore] {
        calls += 1
        return (0..<batch.count).map { i in
            let sample = batch[i]
            guard !sample.reference.isEmpty else { return RewardScore(reward: .nan, correct: false) }
            let ok = sample.completion.hasSuffix("#" + sample.reference)
            return RewardScore(reward: ok ? 1 : 0, correct: ok)
        }
    }
}

/// An in-memory judge that returns fixed scores, first errors and disposition.
public final class FakeJudge: FeedbackGenerator {
    public var scores: (FeedbackGroup) -> [Double]
    public var disposition: Disposition
    public private(set) var calls = 0

    public init(disposition: Disposition = .keep, scores: @escaping (FeedbackGroup) -> [Double]) {
        self.scores = scores
        self.disposition = disposition
    }

    public func assess(_ group: FeedbackGroup) -> Feedback {
        calls += 1
        let s = scores(group)
        return Feedback(scores: s, firstErrors: s.map { $0.isNaN || $0 >= 1 ? nil : 0 }, disposition: disposition)
    }
}
