/// A whole group of completions of one prompt, as a judge sees it.
public struct FeedbackGroup: Sendable, Equatable {
    public var prompt: String
    /// The reference final answer; empty when unknown.
    public var reference: String
    /// The reference solution's steps; empty when the task has none.
    public var referenceSteps: [String]
    /// A JSON object from the dataset, or empty.
    public var metadataJSON: String
    /// The G completions.
    public var completions: [String]
    /// Their rewards ([G]; NaN = not applicable).
    public var rewards: [Double]
    /// Their correctness ([G]).
    public var correct: [Bool]

    public init(
        prompt: String, reference: String, referenceSteps: [String] = [], metadataJSON: String = "",
        completions: [String], rewards: [Double], correct: [Bool]
    ) {
        self.prompt = prompt
        self.reference = reference
        self.referenceSteps = referenceSteps
        self.metadataJSON = metadataJSON
        self.completions = completions
        self.rewards = rewards
        self.correct = correct
    }
}

/// What to do with a group after the judge has seen it.
public enum Disposition: Int32, Sendable, CaseIterable {
    /// Train on the group.
    case keep = 0
    /// Leave it out of this batch.
    case drop = 1
    /// Replace it with a freshly sampled group.
    case resample = 2
}

/// The judge's answer for one group.
public struct Feedback: Sendable, Equatable {
    /// Per completion, a score in [0, 1] (e.g. the RTS), or NaN for no opinion.
    public var scores: [Double]
    /// Per completion, the 0-based index of the first wrong step, or nil.
    public var firstErrors: [Int?]
    /// Per completion, where that step is in the completion: UTF-8 byte
    /// offsets `begin..<end`, or nil when the judge did not say (judges
    /// before ABI 1.2 never do) or found no error.
    public var firstErrorSpans: [Range<Int>?]
    /// What to do with the group.
    public var disposition: Disposition

    public init(scores: [Double], firstErrors: [Int?], firstErrorSpans: [Range<Int>?]? = nil,
                disposition: Disposition = .keep) {
        precondition(firstErrorSpans.map { $0.count == firstErrors.count } ?? true, "firstErrorSpans must be [G]")
        self.scores = scores
        self.firstErrors = firstErrors
        self.firstErrorSpans = firstErrorSpans ?? Array(repeating: nil, count: firstErrors.count)
        self.disposition = disposition
    }
}

/// Judges groups (the ABI's `prism.feedback/1`). Calls are never concurrent.
public protocol FeedbackGenerator: AnyObject {
    /// Assesses `group`; the arrays in the result have one element per completion.
    /// - Throws: when the judge fails; the trainer then treats it as "no opinion".
    func assess(_ group: FeedbackGroup) throws -> Feedback
}
