import PrismCore
import PrismHost

// The host's face of isolated plugins: the same PrismCore protocols as the
// in-process adapters, each call a round trip to the runner.

/// A reward function in a runner process.
public final class IsolatedReward: RewardFunction {
    public let channel: RunnerChannel
    public init(_ channel: RunnerChannel) { self.channel = channel }

    public func score(_ batch: RewardBatch) throws -> [RewardScore] {
        var reader = try channel.call("score") { try $0.rewardBatch(batch) }
        let scores = try reader.rewardScores()
        guard scores.count == batch.count else {
            throw PluginError(.invalidOutput, plugin: channel.label, reason: "score returned \(scores.count) scores for \(batch.count) samples")
        }
        return scores
    }
}

/// A judge in a runner process.
public final class IsolatedJudge: FeedbackGenerator {
    public let channel: RunnerChannel
    public init(_ channel: RunnerChannel) { self.channel = channel }

    public func assess(_ group: FeedbackGroup) throws -> Feedback {
        var report = FeedbackReport()
        return try assess(group, report: &report)
    }

    public func assess(_ group: FeedbackGroup, report: inout FeedbackReport) throws -> Feedback {
        var reader = try channel.call("assess") { try $0.feedbackGroup(group) }
        report = report + (try reader.feedbackReport())
        guard try reader.bool() else {
            let code = try reader.string(), plugin = try reader.string(), reason = try reader.string()
            throw PluginError(.named(code), plugin: plugin, reason: reason)
        }
        let feedback = try reader.feedback()
        guard feedback.scores.count == group.completions.count else {
            throw PluginError(.invalidOutput, plugin: channel.label, reason: "assess returned \(feedback.scores.count) scores for \(group.completions.count) completions")
        }
        return feedback
    }
}

/// A sampler in a runner process.
public final class IsolatedSampler: Sampler {
    public let channel: RunnerChannel
    public init(_ channel: RunnerChannel) { self.channel = channel }

    public func sample(logits: [Float], rows: Int, vocab: Int, rng: inout RandomState) throws -> [Int] {
        let state = rng
        var reader = try channel.call("sample") { writer in
            try writer.array(logits)
            writer.int(rows)
            writer.int(vocab)
            writer.rng(state)
        }
        let tokens = try reader.array(Int.self)
        rng = try reader.rng()
        guard tokens.count == rows else {
            throw PluginError(.invalidOutput, plugin: channel.label, reason: "sample returned \(tokens.count) tokens for \(rows) rows")
        }
        return tokens
    }
}

/// A strategy in a runner process.
public final class IsolatedStrategy: GroupStrategy {
    public let channel: RunnerChannel
    public init(_ channel: RunnerChannel) { self.channel = channel }

    public func wantsFeedback(for group: StrategyGroup) throws -> Bool {
        var reader = try channel.call("wants_feedback") { try $0.strategyGroup(group) }
        return try reader.bool()
    }

    public func disposition(for group: StrategyGroup) throws -> Disposition {
        var reader = try channel.call("disposition") { try $0.strategyGroup(group) }
        let raw = Int32(truncatingIfNeeded: try reader.int())
        guard let disposition = Disposition(rawValue: raw) else { throw WireError("disposition \(raw)") }
        return disposition
    }

    public func advantages(for groups: [StrategyGroup]) throws -> ScoredBatch {
        var reader = try channel.call("advantages") { writer in
            writer.int(groups.count)
            for group in groups { try writer.strategyGroup(group) }
        }
        return try reader.scoredBatch()
    }
}

/// A compute backend in a runner process. Its runner is never restarted:
/// the weights live there, so a crash ends the run at its last checkpoint.
public final class IsolatedBackend: ComputeBackend {
    public let channel: RunnerChannel
    public init(_ channel: RunnerChannel) { self.channel = channel }

    public func info() throws -> BackendInfo {
        var reader = try channel.call("info") { _ in }
        return try reader.backendInfo()
    }
    public func tokenize(_ text: String) throws -> [Int32] {
        var reader = try channel.call("tokenize") { $0.string(text) }
        return try reader.array(Int32.self)
    }
    public func tokenizePrompt(_ text: String) throws -> [Int32]? {
        var reader = try channel.call("tokenize_prompt") { $0.string(text) }
        return try reader.bool() ? try reader.array(Int32.self) : nil
    }
    public func logprobsKeepingPass(_ batch: TokenBatch, temperature: Float) throws -> [Float]? {
        var reader = try channel.call("logprobs_keep") {
            try $0.tokenBatch(batch)
            $0.double(Double(temperature))
        }
        return try reader.bool() ? try reader.array(Float.self) : nil
    }
    public func backwardKeptPass(gradLogprobs: [Float]) throws {
        _ = try channel.call("backward_kept") { try $0.array(gradLogprobs) }
    }
    public func detokenize(_ tokens: [Int32]) throws -> String {
        var reader = try channel.call("detokenize") { try $0.array(tokens) }
        return try reader.string()
    }
    public func beginDecoding(_ prompts: TokenBatch) throws -> [Float] {
        var reader = try channel.call("begin_decoding") { try $0.tokenBatch(prompts) }
        return try reader.array(Float.self)
    }
    public func decodeStep(_ tokens: [Int32]) throws -> [Float] {
        var reader = try channel.call("decode_step") { try $0.array(tokens) }
        return try reader.array(Float.self)
    }
    /// Whether the runner's backend has decode_step_rows; nil until asked.
    private var decodesRows: Bool?
    public func decodeStep(rows: [Int], tokens: [Int32]) throws -> [Float]? {
        if decodesRows == false { return nil }
        var reader = try channel.call("decode_step_rows") {
            try $0.array(rows.map { Int32(clamping: $0) })
            try $0.array(tokens)
        }
        decodesRows = try reader.bool()
        return decodesRows == true ? try reader.array(Float.self) : nil
    }
    public func logprobs(_ batch: TokenBatch, model: ModelKind, temperature: Float) throws -> [Float] {
        var reader = try channel.call("logprobs") { writer in
            try writer.tokenBatch(batch)
            writer.int(Int(model.rawValue))
            writer.double(Double(temperature))
        }
        return try reader.array(Float.self)
    }
    public func backward(_ batch: TokenBatch, temperature: Float, gradLogprobs: [Float]) throws {
        _ = try channel.call("backward") { writer in
            try writer.tokenBatch(batch)
            writer.double(Double(temperature))
            try writer.array(gradLogprobs)
        }
    }
    public func optimizerStep(_ step: OptimizerStep) throws -> Double {
        var reader = try channel.call("optimizer_step") { $0.optimizerStep(step) }
        return try reader.double()
    }
    public func zeroGrad() throws { _ = try channel.call("zero_grad") { _ in } }
    public func snapshotReference() throws { _ = try channel.call("snapshot_reference") { _ in } }
    public func save(to path: String) throws { _ = try channel.call("save") { $0.string(path) } }
    public func load(from path: String) throws { _ = try channel.call("load") { $0.string(path) } }
}

/// Opens isolated plugins: a channel per instance, its runner started at
/// once (so a library that does not load fails here, not mid-run).
public enum Isolation {
    public static func reward(_ spec: IsolationSpec, shouldCancel: @escaping () -> Bool) throws -> IsolatedReward {
        IsolatedReward(try opened(spec, shouldCancel))
    }
    public static func judge(_ spec: IsolationSpec, shouldCancel: @escaping () -> Bool) throws -> IsolatedJudge {
        IsolatedJudge(try opened(spec, shouldCancel))
    }
    public static func sampler(_ spec: IsolationSpec, shouldCancel: @escaping () -> Bool) throws -> IsolatedSampler {
        IsolatedSampler(try opened(spec, shouldCancel))
    }
    public static func strategy(_ spec: IsolationSpec, shouldCancel: @escaping () -> Bool) throws
        -> (strategy: IsolatedStrategy, needsJudge: Bool)
    {
        let channel = try opened(spec, shouldCancel)
        return (IsolatedStrategy(channel), channel.needsJudge)
    }
    public static func backend(_ spec: IsolationSpec, shouldCancel: @escaping () -> Bool) throws -> IsolatedBackend {
        var spec = spec
        spec.restartable = false
        return IsolatedBackend(try opened(spec, shouldCancel))
    }

    static func opened(_ spec: IsolationSpec, _ shouldCancel: @escaping () -> Bool) throws -> RunnerChannel {
        let channel = RunnerChannel(spec, shouldCancel: shouldCancel)
        _ = try channel.call("ping") { _ in }
        return channel
    }
}
