import Foundation
import PrismCore

/// The stylized-model study (`prism simulate`): every strategy through the
/// real GRPO loop on the stylized backend plugin (a tabular n-step policy,
/// see Documentation/EXPERIMENTS.md), several seeds, learning curves of
/// P(correct) and of the all-negative share, and time-to-threshold.
public struct Simulation {
    public struct Settings: Sendable {
        public var strategies: [StudyStrategy] = StudyStrategy.all
        /// Judge noise levels: each judge-using strategy runs at every level.
        public var noises: [Double] = [0]
        public var seeds = 5
        public var firstSeed = 0
        public var steps = 300
        public var groupSize = 8
        /// Groups (prompts) per step.
        public var groups = 64
        /// Reasoning steps n of the stylized model.
        public var reasoningSteps = 2
        /// Initial logits, one per reasoning step.
        public var initialLogits = [-2.5, -2.5]
        /// Step sizes on the expected score-function gradient (plain SGD);
        /// with several, every strategy runs at each (a learning-rate sweep).
        public var learningRates = [0.5]
        public var thresholds = [0.5, 0.9]
        /// Budget tokens charged per completion token the judge reads, as
        /// `run.judge_token_cost` in training (0 = a free judge).
        public var judgeTokenCost = 1.0
        /// Plugin names (product or path).
        public var plugin = "PrismStylized"
        public var sampler = "PrismSampler"

        public init() {}
    }

    /// One simulated run: curves over steps 0...steps (P) and 1...steps (the rest).
    public struct Run: Sendable {
        public var label: String
        public var learningRate: Double
        public var seed: Int
        /// P(correct) before the first update and after each step: steps + 1 values.
        public var pCorrect: [Double]
        public var allNegative: [Double]
        public var zeroAdvantage: [Double]
        /// Budget tokens spent, cumulative: generated tokens (resampled
        /// groups included) plus the judge's reading at `judgeTokenCost`.
        public var tokens: [Double]

        /// The first step after which P(correct) > threshold, or nil.
        public func steps(toReach threshold: Double) -> Int? {
            pCorrect.firstIndex { $0 > threshold }
        }

        /// Budget tokens spent until P(correct) > threshold, or nil.
        public func tokens(toReach threshold: Double) -> Double? {
            steps(toReach: threshold).map { $0 == 0 ? 0 : tokens[$0 - 1] }
        }
    }

    public var settings: Settings
    /// Loads the plugins a config names (the CLI's loader, or a test's).
    public var load: (ConfigFile) throws -> Components

    public init(settings: Settings, load: @escaping (ConfigFile) throws -> Components) {
        self.settings = settings
        self.load = load
    }

    /// One (strategy, judge noise, learning rate) combination.
    public struct Variant: Sendable {
        public var label: String
        public var strategy: StudyStrategy
        public var noise: Double
        public var learningRate: Double
    }

    /// The variants to run: every strategy at every learning rate, and the
    /// judge-using ones at every noise level. Labels name what varies.
    public var variants: [Variant] {
        settings.strategies.flatMap { strategy -> [Variant] in
            let noises = strategy.usesJudge ? settings.noises : [0]
            return noises.flatMap { noise in
                settings.learningRates.map { lr in
                    var label = strategy.name
                    if strategy.usesJudge, settings.noises != [0] { label += " eps=\(String(format: "%g", noise))" }
                    if settings.learningRates.count > 1 { label += " lr=\(String(format: "%g", lr))" }
                    return Variant(label: label, strategy: strategy, noise: noise, learningRate: lr)
                }
            }
        }
    }

    /// The config of one run: the stylized plugin as backend, reward and
    /// judge; plain SGD; the loss normalised so that the update is
    /// `lr * mean over responses of A * grad log pi(response)`.
    public func config(_ variant: Variant, seed: Int) throws -> ConfigFile {
        let s = settings
        var c = ConfigFile()
        let logits = s.initialLogits.map { "\($0)" }.joined(separator: ", ")
        for assignment in [
            "seed=\(seed)", "model.plugin=\(s.plugin)", "reward.plugin=\(s.plugin)", "judge.plugin=\(s.plugin)",
            "sampler.plugin=\(s.sampler)",
            "model.config={\"steps\": \(s.reasoningSteps), \"init\": [\(logits)]}",
            "reward.config={\"steps\": \(s.reasoningSteps)}",
            "judge.config={\"steps\": \(s.reasoningSteps), \"noise\": \(variant.noise), \"seed\": \(seed)}",
            "grpo.group_size=\(s.groupSize)", "grpo.prompts_per_step=\(s.groups)",
            "grpo.max_new_tokens=\(s.reasoningSteps + 1)", "grpo.temperature=1",
            "loss.aggregation=seq-mean-token-sum-norm", "loss.norm_length=1", "loss.kl_beta=0",
            "optimizer.lr=\(variant.learningRate)", "optimizer.max_grad_norm=0", "optimizer.weight_decay=0",
        ] + variant.strategy.assignments {
            try c.set(assignment)
        }
        return c
    }

    /// The stylized problem: "?" answered by n successful steps.
    public var problem: Example {
        let n = settings.reasoningSteps
        return Example(prompt: "?", answer: String(repeating: "1", count: n), steps: Array(repeating: "1", count: n))
    }

    /// P(correct) = P("1" x n then EOS | "?"), from the backend's own log-probs.
    public func pCorrect(_ policy: Policy) throws -> Double {
        let sequence = try policy.promptTokens(problem.prompt) + (try policy.backend.tokenize(problem.answer))
            + (policy.info.eosToken.map { [Int32($0)] } ?? [])
        let logprobs = try policy.backend.logprobs(TokenBatch(sequences: [sequence], pad: 0), model: .policy, temperature: 1)
        return Elementary.exp(logprobs.reduce(0) { $0 + Double($1) })
    }

    /// Runs one variant with one seed.
    public func run(_ variant: Variant, seed: Int) throws -> Run {
        let config = try config(variant, seed: seed)
        let components = try load(config)
        let policy = try Policy(backend: components.backend, sampler: components.sampler, temperature: 1)
        let step = GRPOStep(policy: policy, reward: components.reward, judge: components.judge,
                            settings: try config.grpoSettings(strategy: components.strategy))
        var rng = RandomState(seed: UInt64(seed))
        var run = Run(label: variant.label, learningRate: variant.learningRate, seed: seed, pCorrect: [try pCorrect(policy)],
                      allNegative: [], zeroAdvantage: [], tokens: [])
        var spent = 0.0
        let problem = self.problem
        for n in 1...max(settings.steps, 1) {
            let (metrics, _) = try step.run(step: n, next: { problem }, rng: &rng)
            // All-negative share among every group generated (a filter's dropped ones included).
            run.allNegative.append((metrics[.samplingAllNegative] ?? 0) / max(metrics[.samplingGroups] ?? 0, 1))
            let groups = max(metrics[.groupsTotal] ?? 0, 1)
            run.zeroAdvantage.append((metrics[.groupsZeroAdvantage] ?? 0) / groups)
            spent += (metrics[.tokensGenerated] ?? 0) + settings.judgeTokenCost * (metrics[.feedbackJudgedTokens] ?? 0)
            run.tokens.append(spent)
            run.pCorrect.append(try pCorrect(policy))
        }
        return run
    }

    /// Every variant with every seed, in order; `progress` after each run.
    public func runAll(progress: (Run, Int, Int) -> Void = { _, _, _ in }) throws -> [Run] {
        let jobs = variants.flatMap { v in (0..<settings.seeds).map { (v, settings.firstSeed + $0) } }
        var runs: [Run] = []
        for (index, (variant, seed)) in jobs.enumerated() {
            let run = try run(variant, seed: seed)
            runs.append(run)
            progress(run, index + 1, jobs.count)
        }
        return runs
    }
}

/// Tables, CSV files and charts of a set of simulated runs.
public struct SimulationSummary {
    public var runs: [Simulation.Run]
    public var thresholds: [Double]

    public init(runs: [Simulation.Run], thresholds: [Double]) {
        self.runs = runs
        self.thresholds = thresholds
    }

    /// Labels in first-seen order.
    public var labels: [String] {
        var seen: [String] = []
        for run in runs where !seen.contains(run.label) { seen.append(run.label) }
        return seen
    }

    /// Two table cells: steps and budget (thousands of tokens) to reach
    /// `threshold`, mean ± 95% over the seeds of `group` that reached it.
    func reachCells(_ group: [Simulation.Run], _ threshold: Double) -> String {
        let steps = group.compactMap { $0.steps(toReach: threshold) }.map(Double.init)
        let kiloTokens = group.compactMap { $0.tokens(toReach: threshold) }.map { $0 / 1000 }
        let note = steps.count < group.count ? " (\(steps.count)/\(group.count) reached)" : ""
        return steps.isEmpty ? " never\(note) | — |" : " \(Interval(steps).formatted(1))\(note) | \(Interval(kiloTokens).formatted(1)) |"
    }

    /// The table printed by `prism simulate` (Markdown).
    public var table: String {
        var header = "| strategy |"
        var rule = "|---|"
        for t in thresholds {
            header += " steps to P>\(t) | budget to P>\(t) (k tokens) |"
            rule += "---|---|"
        }
        header += " final P(correct) | mean all-negative share |"
        rule += "---|---|"
        var lines = [header, rule]
        for label in labels {
            let group = runs.filter { $0.label == label }
            var line = "| \(label) |"
            for t in thresholds { line += reachCells(group, t) }
            let final = Interval(group.compactMap(\.pCorrect.last))
            let negative = Interval(group.map { $0.allNegative.reduce(0, +) / Double(max($0.allNegative.count, 1)) })
            line += " \(final.formatted(3)) | \(negative.formatted(3)) |"
            lines.append(line)
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Per strategy (and noise level), the learning rate with the fewest
    /// mean steps to the first threshold (seeds that never reach it count
    /// as one step past the end), with its row of the table: the fair
    /// comparison when estimators scale their advantages differently.
    public var tunedTable: String {
        guard let threshold = thresholds.first else { return "" }
        var lines = ["| strategy | best lr | steps to P>\(threshold) | budget to P>\(threshold) (k tokens) | final P(correct) |",
                     "|---|---|---|---|---|"]
        // The learning rate is the last part of a sweep's labels ("sgpo eps=0.1 lr=2").
        func family(_ run: Simulation.Run) -> String {
            run.label.range(of: " lr=").map { String(run.label[..<$0.lowerBound]) } ?? run.label
        }
        var families: [String] = []
        for run in runs where !families.contains(family(run)) { families.append(family(run)) }
        for name in families {
            let candidates = runs.filter { family($0) == name }
            func cost(_ lr: Double) -> Double {
                let group = candidates.filter { $0.learningRate == lr }
                return group.map { Double($0.steps(toReach: threshold) ?? $0.pCorrect.count) }.reduce(0, +) / Double(group.count)
            }
            guard let best = Set(candidates.map(\.learningRate)).min(by: { cost($0) < cost($1) || (cost($0) == cost($1) && $0 < $1) })
            else { continue }
            let group = candidates.filter { $0.learningRate == best }
            lines.append("| \(name) | \(String(format: "%g", best)) |" + reachCells(group, threshold)
                + " \(Interval(group.compactMap(\.pCorrect.last)).formatted(3)) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One row per (run, step): label, seed, step, p_correct, all_negative, zero_advantage, tokens.
    public var curvesCSV: String {
        var out = "strategy,seed,step,p_correct,all_negative,zero_advantage,tokens\n"
        for run in runs {
            for step in run.pCorrect.indices {
                let metrics = step == 0 ? "," : "\(run.allNegative[step - 1]),\(run.zeroAdvantage[step - 1])"
                let tokens = step == 0 ? 0 : run.tokens[step - 1]
                out += "\(run.label),\(run.seed),\(step),\(run.pCorrect[step]),\(metrics),\(Int(tokens))\n"
            }
        }
        return out
    }

    /// One row per (run, threshold): steps and tokens to reach it (empty = never).
    public var thresholdsCSV: String {
        var out = "strategy,seed,threshold,steps,tokens\n"
        for run in runs {
            for t in thresholds {
                out += "\(run.label),\(run.seed),\(t),\(run.steps(toReach: t).map(String.init) ?? ""),"
                    + "\(run.tokens(toReach: t).map { String(Int($0)) } ?? "")\n"
            }
        }
        return out
    }

    /// Mean curve with a 95% band per label, of `value(run)[step]`.
    public func chart(title: String, yLabel: String, offset: Int, yRange: ClosedRange<Double>?,
                      _ value: (Simulation.Run) -> [Double]) -> BandChart {
        let series = labels.map { label -> BandChart.Series in
            let curves = runs.filter { $0.label == label }.map(value)
            let length = curves.map(\.count).min() ?? 0
            let points = (0..<length).map { i -> (x: Double, mean: Double, low: Double, high: Double) in
                let interval = Interval(curves.map { $0[i] })
                return (Double(i + offset), interval.mean, interval.low, interval.high)
            }
            return BandChart.Series(name: label, points: points)
        }
        return BandChart(title: title, xLabel: "step", yLabel: yLabel, series: series, yRange: yRange)
    }

    /// Writes curves.csv, time_to_threshold.csv, summary.md, p_correct.svg and all_negative.svg.
    public func write(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func save(_ text: String, _ name: String) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: directory + "/" + name), options: .atomic)
        }
        try save(curvesCSV, "curves.csv")
        try save(thresholdsCSV, "time_to_threshold.csv")
        try save(table + (Set(runs.map(\.learningRate)).count > 1 ? "\nBest learning rate per strategy:\n\n" + tunedTable : ""),
                 "summary.md")
        try chart(title: "P(correct), mean and 95% band over seeds", yLabel: "P(correct)", offset: 0, yRange: 0...1) { $0.pCorrect }
            .write(to: directory + "/p_correct.svg")
        try chart(title: "share of all-negative groups", yLabel: "all-negative share", offset: 1, yRange: 0...1) { $0.allNegative }
            .write(to: directory + "/all_negative.svg")
    }
}
