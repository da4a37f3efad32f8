/// The statistics of one training step, each a ``Metric``, in
/// ``Metric``'s order for `metrics.jsonl`.
public struct StepMetrics: Sendable, Equatable {
    private var values: [Metric: Double] = [:]

    public init() {}

    public static func == (a: StepMetrics, b: StepMetrics) -> Bool {
        a.values.count == b.values.count && a.values.allSatisfy { metric, value in
            b.values[metric].map { $0 == value || ($0.isNaN && value.isNaN) } ?? false
        }
    }

    /// The metrics set, in ``Metric``'s order, with their names.
    public var entries: [(name: String, value: Double)] {
        Metric.allCases.compactMap { metric in values[metric].map { (metric.name, $0) } }
    }

    /// Sets `metric` (replacing an earlier value).
    public mutating func set(_ metric: Metric, _ value: Double) {
        values[metric] = value
    }

    public subscript(metric: Metric) -> Double? { values[metric] }

    /// By name, for code that reads metrics generically.
    public subscript(name: String) -> Double? { Metric(rawValue: name).flatMap { values[$0] } }

    /// Group counts, reward and advantage statistics of a scored batch:
    /// `groups/total`, `groups/all_negative`, `groups/all_positive`,
    /// `groups/mixed`, `groups/not_applicable`, `groups/diversified`,
    /// `groups/zero_advantage`, `responses/diversified`, `feedback/unlocated`,
    /// `reward` (mean of applicable rewards before
    /// diversification), `reward_std`, `accuracy`, `advantages/mean|min|max`.
    public mutating func record(_ batch: ScoredBatch, plain groups: [GroupRewards]) {
        set(.groupsTotal, Double(batch.kinds.count))
        let byKind: [(GroupKind, Metric)] = [
            (.allNegative, .groupsAllNegative), (.allPositive, .groupsAllPositive), (.mixed, .groupsMixed),
            (.notApplicable, .groupsNotApplicable),
        ]
        for (kind, metric) in byKind {
            set(metric, Double(batch.kinds.filter { $0 == kind }.count))
        }
        set(.groupsDiversified, Double(batch.diversifiedGroups))
        set(.groupsZeroAdvantage, Double(batch.zeroAdvantageGroups))
        set(.responsesDiversified, Double(batch.diversifiedResponses))
        set(.feedbackUnlocated, Double(batch.unlocatedResponses))
        let rewards = groups.flatMap(\.rewards)
        let stats = SampleStatistics(rewards)
        set(.reward, stats.count > 0 ? stats.mean : .nan)
        set(.rewardStd, stats.std)
        let applicable = groups.flatMap { zip($0.rewards, $0.correct).filter { !$0.0.isNaN }.map(\.1) }
        set(.accuracy, applicable.isEmpty ? .nan : Double(applicable.filter { $0 }.count) / Double(applicable.count))
        let advantages = batch.advantages.joined()
        set(.advantagesMean, advantages.isEmpty ? 0 : advantages.reduce(0, +) / Double(advantages.count))
        set(.advantagesMin, advantages.min() ?? 0)
        set(.advantagesMax, advantages.max() ?? 0)
    }

    /// The filter's verdicts summed over a step's rounds: `groups/dropped`,
    /// `sampling/resampled`, `sampling/rounds`, `sampling/cap_reached` (0 or 1).
    public mutating func record(plans: [GroupFilter.Plan]) {
        set(.groupsDropped, Double(plans.map(\.drop.count).reduce(0, +)))
        set(.samplingResampled, Double(plans.map(\.resample.count).reduce(0, +)))
        set(.samplingRounds, Double(plans.count))
        set(.samplingCapReached, plans.contains(where: \.capReached) ? 1 : 0)
    }

    /// Judge health: `feedback/latency_ms` (mean per call) and `feedback/errors`.
    /// A judge's report on its calls; nothing when it reported nothing (the
    /// metrics then stay absent, as for judges without a model behind them).
    public mutating func record(_ report: FeedbackReport) {
        guard !report.isEmpty else { return }
        let values: [(Metric, Int)] = [
            (.feedbackJudgePromptTokens, report.promptTokens), (.feedbackJudgeCompletionTokens, report.completionTokens),
            (.feedbackRequests, report.requests), (.feedbackRetries, report.retries), (.feedbackCacheHits, report.cacheHits),
            (.feedbackUnparseable, report.unparseable), (.feedbackTimeouts, report.timeouts),
            (.feedbackHTTPErrors, report.httpErrors), (.feedbackConnectionErrors, report.connectionErrors),
        ]
        for (metric, value) in values { set(metric, Double(value)) }
    }

    public mutating func recordFeedback(latenciesMs: [Double], errors: Int) {
        set(.feedbackLatencyMs, latenciesMs.isEmpty ? 0 : latenciesMs.reduce(0, +) / Double(latenciesMs.count))
        set(.feedbackErrors, Double(errors))
    }

    /// `completions/mean_length` in tokens.
    public mutating func recordCompletions(lengths: [Int]) {
        set(.completionsMeanLength, lengths.isEmpty ? 0 : Double(lengths.reduce(0, +)) / Double(lengths.count))
    }
}
