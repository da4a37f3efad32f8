/// The statistics of one training step under the names of DESIGN §5 (the
/// peers' names where they exist), in a stable order for `metrics.jsonl`.
public struct StepMetrics: Sendable, Equatable {
    /// `name -> value`, in insertion order.
    public private(set) var entries: [(name: String, value: Double)] = []

    public init() {}

    public static func == (a: StepMetrics, b: StepMetrics) -> Bool {
        a.entries.count == b.entries.count
            && zip(a.entries, b.entries).allSatisfy {
                $0.name == $1.name && ($0.value == $1.value || ($0.value.isNaN && $1.value.isNaN))
            }
    }

    /// Sets `name` (replacing an earlier value, keeping its position).
    public mutating func set(_ name: String, _ value: Double) {
        if let index = entries.firstIndex(where: { $0.name == name }) {
            entries[index].value = value
        } else {
            entries.append((name, value))
        }
    }

    public subscript(name: String) -> Double? {
        entries.first { $0.name == name }?.value
    }

    /// Group counts, reward and advantage statistics of a scored batch:
    /// `groups/total`, `groups/all_negative`, `groups/all_positive`,
    /// `groups/mixed`, `groups/not_applicable`, `groups/diversified`,
    /// `groups/zero_advantage`, `responses/diversified`,
    /// `rewards/not_applicable`, `reward` (mean of applicable rewards before
    /// diversification), `reward_std`, `accuracy`, `advantages/mean|min|max`.
    public mutating func record(_ batch: ScoredBatch, plain groups: [GroupRewards]) {
        set("groups/total", Double(batch.kinds.count))
        for kind in [GroupKind.allNegative, .allPositive, .mixed, .notApplicable] {
            set("groups/\(kind.rawValue)", Double(batch.kinds.filter { $0 == kind }.count))
        }
        set("groups/diversified", Double(batch.diversifiedGroups))
        set("groups/zero_advantage", Double(batch.zeroAdvantageGroups))
        set("responses/diversified", Double(batch.diversifiedResponses))
        let rewards = groups.flatMap(\.rewards)
        set("rewards/not_applicable", Double(rewards.filter(\.isNaN).count))
        let stats = SampleStatistics(rewards)
        set("reward", stats.count > 0 ? stats.mean : .nan)
        set("reward_std", stats.std)
        let applicable = groups.flatMap { zip($0.rewards, $0.correct).filter { !$0.0.isNaN }.map(\.1) }
        set("accuracy", applicable.isEmpty ? .nan : Double(applicable.filter { $0 }.count) / Double(applicable.count))
        let advantages = batch.advantages.joined()
        set("advantages/mean", advantages.isEmpty ? 0 : advantages.reduce(0, +) / Double(advantages.count))
        set("advantages/min", advantages.min() ?? 0)
        set("advantages/max", advantages.max() ?? 0)
    }

    /// The filter's verdicts summed over a step's rounds: `groups/dropped`,
    /// `sampling/resampled`, `sampling/rounds`, `sampling/cap_reached` (0 or 1).
    public mutating func record(plans: [GroupFilter.Plan]) {
        set("groups/dropped", Double(plans.map(\.drop.count).reduce(0, +)))
        set("sampling/resampled", Double(plans.map(\.resample.count).reduce(0, +)))
        set("sampling/rounds", Double(plans.count))
        set("sampling/cap_reached", plans.contains(where: \.capReached) ? 1 : 0)
    }

    /// Judge health: `feedback/latency_ms` (mean per call) and `feedback/errors`.
    public mutating func recordFeedback(latenciesMs: [Double], errors: Int) {
        set("feedback/latency_ms", latenciesMs.isEmpty ? 0 : latenciesMs.reduce(0, +) / Double(latenciesMs.count))
        set("feedback/errors", Double(errors))
    }

    /// `completions/mean_length` in tokens.
    public mutating func recordCompletions(lengths: [Int]) {
        set("completions/mean_length", lengths.isEmpty ? 0 : Double(lengths.reduce(0, +)) / Double(lengths.count))
    }
}
