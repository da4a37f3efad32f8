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

/// What judging one group cost and what went wrong (ABI 1.4's
/// `prism_feedback_report`): a judge that calls a model reports the tokens
/// its API counted and its failures by cause, also when the call fails.
public struct FeedbackReport: Sendable, Equatable {
    /// Tokens the judge's model read and wrote (its API's usage).
    public var promptTokens = 0
    public var completionTokens = 0
    /// Model requests sent (retries included, cache hits not), of which retries.
    public var requests = 0
    public var retries = 0
    /// Verdicts answered from a cache.
    public var cacheHits = 0
    /// Answers whose verdict could not be read.
    public var unparseable = 0
    /// Requests past their deadline; answers with an error status or a
    /// malformed body; requests that could not connect or lost the connection.
    public var timeouts = 0
    public var httpErrors = 0
    public var connectionErrors = 0

    public init() {}

    /// Whether the judge reported anything.
    public var isEmpty: Bool { self == FeedbackReport() }

    /// The sum of two reports.
    public static func + (a: FeedbackReport, b: FeedbackReport) -> FeedbackReport {
        var sum = a
        sum.promptTokens += b.promptTokens
        sum.completionTokens += b.completionTokens
        sum.requests += b.requests
        sum.retries += b.retries
        sum.cacheHits += b.cacheHits
        sum.unparseable += b.unparseable
        sum.timeouts += b.timeouts
        sum.httpErrors += b.httpErrors
        sum.connectionErrors += b.connectionErrors
        return sum
    }
}

/// Judges groups (the ABI's `prism.feedback/1`). Calls are never concurrent.
public protocol FeedbackGenerator: AnyObject {
    /// Assesses `group`; the arrays in the result have one element per completion.
    /// - Throws: when the judge fails; the trainer then treats it as "no opinion".
    func assess(_ group: FeedbackGroup) throws -> Feedback

    /// Assesses `group` and adds what it cost and what failed to `report`
    /// (also when it throws). Judges that report nothing need not implement it.
    func assess(_ group: FeedbackGroup, report: inout FeedbackReport) throws -> Feedback
}

extension FeedbackGenerator {
    public func assess(_ group: FeedbackGroup, report: inout FeedbackReport) throws -> Feedback {
        try assess(group)
    }
}
