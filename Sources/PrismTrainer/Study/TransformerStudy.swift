import Foundation
import PrismCore

/// The arithmetic setting shared by `prism demo` and the study: a small
/// transformer warm-started on easy chains, then trained with GRPO on longer
/// ones where most groups are all-negative.
public enum ArithmeticRecipe {
    /// Warm-start problems: 9000 two-to-three-term chains and 1000 four-to-five
    /// term ones (learned positions do not extrapolate to lengths never seen),
    /// two-digit terms.
    public static func warmStart(seed: Int) -> [Example] {
        ArithmeticTask(terms: 2...3, digits: 2...2).examples(count: 9000, seed: UInt64(seed) &+ 1)
            + ArithmeticTask(terms: 4...5, digits: 2...2).examples(count: 1000, seed: UInt64(seed) &+ 2)
    }

    /// Training and held-out chains of exactly `terms` two-digit terms.
    public static func problems(terms: Int, count: Int, seed: UInt64) -> [Example] {
        ArithmeticTask(terms: terms...terms, digits: 2...2).examples(count: count, seed: seed)
    }

    /// The model: 2 layers, width 128, 4 heads, MLP 512, sequences up to 80.
    public static func modelConfig(seed: Int) -> String {
        #"{"vocab": "0123456789+=;#", "d_model": 128, "layers": 2, "heads": 4, "d_ff": 512, "max_len": 80, "seed": \#(seed)}"#
    }

    /// The GRPO settings both use: G = 8, 16 prompts a step, 60 new tokens.
    public static let grpoAssignments = [
        "grpo.group_size=8", "grpo.prompts_per_step=16", "grpo.max_new_tokens=60", "eval.max_new_tokens=60",
        "sft.lr=1e-3", "sft.batch_size=64",
    ]

    /// Supervised warm-start of the backend `config` names on `examples`,
    /// saved to `checkpoint`.
    public static func warmStart(_ examples: [Example], steps: Int, seed: Int, components: Components,
                                 config: ConfigFile, checkpoint: String, log: (String) -> Void) throws {
        let policy = try Policy(backend: components.backend, sampler: components.sampler, temperature: 1)
        try SupervisedStep.warmStart(examples, policy: policy, config: config, steps: steps, seed: UInt64(seed), log: log)
        try components.backend.save(to: checkpoint)
    }

    /// What ``prepare(_:load:progress:)`` makes.
    public struct Preparation: Sendable {
        public var directory: String
        /// Terms of the training and held-out problems.
        public var terms: Int
        public var evalProblems: Int
        /// Seed of the data, the model's initialisation and the warm start.
        public var seed: Int
        public var sftSteps: Int
        /// Config assignments on top of ``grpoAssignments`` and the data.
        public var assignments: [String]
        /// Keep an existing warm start instead of training a new one.
        public var reuseWarmStart: Bool

        public init(directory: String, terms: Int, evalProblems: Int, seed: Int, sftSteps: Int,
                    assignments: [String], reuseWarmStart: Bool) {
            self.directory = directory
            self.terms = terms
            self.evalProblems = evalProblems
            self.seed = seed
            self.sftSteps = sftSteps
            self.assignments = assignments
            self.reuseWarmStart = reuseWarmStart
        }

        public var checkpoint: String { directory + "/warm-start.safetensors" }
    }

    /// The data (5000 training and `evalProblems` held-out problems of
    /// `terms` terms) and the warm start shared by the demo and the study.
    /// - Returns: the base config of the runs, its `model.checkpoint` the
    ///   warm start.
    public static func prepare(_ p: Preparation, load: (ConfigFile) throws -> Components,
                               progress: ProgressReporter) throws -> ConfigFile {
        let dir = p.directory
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let seed = UInt64(p.seed)
        try JSONL.write(problems(terms: p.terms, count: 5000, seed: seed &+ 3), to: dir + "/train.jsonl")
        try JSONL.write(problems(terms: p.terms, count: p.evalProblems, seed: seed &+ 4), to: dir + "/eval.jsonl")
        var base = ConfigFile()
        for assignment in grpoAssignments + [
            "data.train=\(dir)/train.jsonl", "data.eval=\(dir)/eval.jsonl", "data.eval_problems=\(p.evalProblems)",
        ] + p.assignments { try base.set(assignment) }
        try base.set("model.config=" + modelConfig(seed: p.seed))
        if p.reuseWarmStart, FileManager.default.fileExists(atPath: p.checkpoint) {
            progress.log("reusing the warm start \(p.checkpoint)")
        } else {
            let examples = warmStart(seed: p.seed)
            try JSONL.write(examples, to: dir + "/sft.jsonl")
            progress.log("warm start: \(p.sftSteps) SFT steps on \(examples.count) problems")
            try warmStart(examples, steps: p.sftSteps, seed: p.seed, components: try load(base), config: base,
                          checkpoint: p.checkpoint + ".tmp", log: progress.log)
            try? FileManager.default.removeItem(atPath: p.checkpoint)
            try FileManager.default.moveItem(atPath: p.checkpoint + ".tmp", toPath: p.checkpoint)
        }
        try base.set("model.checkpoint=\(p.checkpoint)")
        return base
    }
}

/// The transformer-level comparison (`prism study`): every strategy from one
/// warm start, several seeds, a matched token budget (generated tokens,
/// resampled groups and the judge's reading all count), held-out accuracy
/// curves over the budget, the all-negative share, and a judge-noise sweep.
public struct TransformerStudy {
    public struct Settings: Sendable {
        public var directory = "runs/study/transformer"
        public var strategies = StudyStrategy.all
        /// Extra runs of `noiseStrategy` with a noisy judge (eps = 0 is the main run).
        public var noises = [0.1, 0.3, 0.5]
        public var noiseStrategy = "sgpo"
        /// Also run `noiseStrategy` with the judge's reading not charged to
        /// the budget (run.judge_token_cost = 0): separates the judge's cost
        /// from the method's effect.
        public var freeJudgeRuns = true
        public var seeds = 3
        /// Terms per training and held-out problem.
        public var terms = 4
        public var tokenBudget = 600_000
        public var evalEvery = 10
        public var evalProblems = 200
        public var sftSteps = 1000
        public var learningRate = 2e-4
        public var dataSeed = 0

        public init() {}
    }

    public struct Variant: Sendable {
        public var label: String
        public var strategy: StudyStrategy
        public var noise: Double
        /// Config assignments on top of the strategy's.
        public var extra: [String] = []
    }

    public var settings: Settings
    public var load: (ConfigFile) throws -> Components
    public var progress: ProgressReporter
    /// Asked between steps (Ctrl-C): the current run stops with a checkpoint.
    public var shouldStop: () -> Bool = { false }

    public init(settings: Settings, progress: ProgressReporter, load: @escaping (ConfigFile) throws -> Components) {
        self.settings = settings
        self.progress = progress
        self.load = load
    }

    /// Every strategy without judge noise, then the noise sweep.
    public var variants: [Variant] {
        var out = settings.strategies.map { Variant(label: $0.name, strategy: $0, noise: 0) }
        if let noisy = StudyStrategy.all.first(where: { $0.name == settings.noiseStrategy }) {
            if settings.freeJudgeRuns {
                out.append(Variant(label: "\(noisy.name) judge-free", strategy: noisy, noise: 0,
                                   extra: ["run.judge_token_cost=0"]))
            }
            out += settings.noises.filter { $0 > 0 }.map {
                Variant(label: "\(noisy.name) eps=\(String(format: "%g", $0))", strategy: noisy, noise: $0)
            }
        }
        return out
    }

    var dir: String { settings.directory }

    /// Data and the shared warm start (reused when already there).
    public func prepare() throws -> ConfigFile {
        let s = settings
        return try ArithmeticRecipe.prepare(
            ArithmeticRecipe.Preparation(
                directory: dir, terms: s.terms, evalProblems: s.evalProblems, seed: s.dataSeed, sftSteps: s.sftSteps,
                assignments: [
                    "eval.k=0", "optimizer.lr=\(s.learningRate)", "run.token_budget=\(s.tokenBudget)", "run.steps=100000",
                    "run.eval_every=\(s.evalEvery)", "run.eval_at_start=true", "run.checkpoint_every=\(s.evalEvery)",
                    "run.judge_token_cost=1", "run.log_samples=2", #"eval.judge_config={"noise": 0}"#,
                ],
                reuseWarmStart: true),
            load: load, progress: progress)
    }

    /// The config of one run.
    public func config(base: ConfigFile, variant: Variant, seed: Int) throws -> ConfigFile {
        var c = base
        for assignment in variant.strategy.assignments + [
            "seed=\(seed)", "judge.config={\"noise\": \(variant.noise), \"seed\": \(seed)}",
        ] + variant.extra { try c.set(assignment) }
        return c
    }

    public func runDirectory(_ variant: Variant, seed: Int) -> RunDirectory {
        RunDirectory(path: "\(dir)/runs/\(variant.label.replacingOccurrences(of: " ", with: "_"))/seed-\(seed)")
    }

    /// Runs (or continues) every variant with every seed; finished runs are
    /// skipped, interrupted ones resume from their last checkpoint.
    /// - Returns: false when interrupted.
    public func run() throws -> Bool {
        let base = try prepare()
        let jobs = variants.flatMap { v in (0..<settings.seeds).map { (v, $0) } }
        let started = Date()
        for (index, (variant, seed)) in jobs.enumerated() {
            let directory = runDirectory(variant, seed: seed)
            if TransformerStudySummary.isComplete(directory, budget: Double(settings.tokenBudget)) { continue }
            progress.log("[\(index + 1)/\(jobs.count)] \(variant.label) seed \(seed) (\(Int(Date().timeIntervalSince(started))) s so far)")
            let config = try config(base: base, variant: variant, seed: seed)
            let trainer = Trainer(config: config, directory: directory, components: try load(config), progress: progress)
            trainer.shouldStop = shouldStop
            let begun = FileManager.default.fileExists(atPath: directory.checkpoints + "/latest")
            if try trainer.run(resume: begun).interrupted { return false }
        }
        return true
    }

    /// The summary of the runs on disk.
    public func summary() throws -> TransformerStudySummary {
        var runs: [TransformerStudySummary.Run] = []
        for variant in variants {
            for seed in 0..<settings.seeds {
                runs.append(try TransformerStudySummary.Run(
                    label: variant.label, noise: variant.noise, seed: seed, directory: runDirectory(variant, seed: seed)))
            }
        }
        return TransformerStudySummary(runs: runs, budget: Double(settings.tokenBudget),
                                       noiseStrategy: settings.noiseStrategy)
    }
}

/// Tables, curves and charts of the transformer study's runs.
public struct TransformerStudySummary {
    /// One run's metrics.
    public struct Run {
        public var label: String
        public var noise: Double
        public var seed: Int
        /// (budget spent, held-out accuracy, step score) at each evaluation, step 0 included.
        public var evaluations: [(spent: Double, accuracy: Double, rts: Double)] = []
        /// (budget spent, all-negative share of generated groups, zero-advantage share) per step.
        public var steps: [(spent: Double, allNegative: Double, zeroAdvantage: Double)] = []

        public init(label: String, noise: Double, seed: Int, directory: RunDirectory) throws {
            self.label = label
            self.noise = noise
            self.seed = seed
            for (_, line) in try directory.readMetrics() {
                let spent = line[.budgetSpent] ?? 0
                if let accuracy = line[.evalAccuracy] {
                    evaluations.append((spent, accuracy, line[.evalRts] ?? .nan))
                }
                if let groups = line[.samplingGroups], groups > 0 {
                    steps.append((spent, (line[.samplingAllNegative] ?? 0) / groups,
                                  (line[.groupsZeroAdvantage] ?? 0) / max(line[.groupsTotal] ?? 0, 1)))
                }
            }
            guard !evaluations.isEmpty else {
                throw TrainerError("\(directory.metricsPath): no evaluation yet; run the study to the end first")
            }
        }

        /// Held-out accuracy at `spent` tokens, linear between evaluations.
        public func accuracy(at spent: Double) -> Double {
            guard let after = evaluations.firstIndex(where: { $0.spent >= spent }) else { return evaluations.last!.accuracy }
            guard after > 0 else { return evaluations[0].accuracy }
            let a = evaluations[after - 1], b = evaluations[after]
            return b.spent > a.spent ? a.accuracy + (b.accuracy - a.accuracy) * (spent - a.spent) / (b.spent - a.spent) : b.accuracy
        }
    }

    public var runs: [Run]
    public var budget: Double
    public var noiseStrategy: String

    public init(runs: [Run], budget: Double, noiseStrategy: String) {
        self.runs = runs
        self.budget = budget
        self.noiseStrategy = noiseStrategy
    }

    /// Whether a run has spent its budget and evaluated at the end.
    public static func isComplete(_ directory: RunDirectory, budget: Double) -> Bool {
        guard let last = try? directory.readMetrics().last?.values else { return false }
        return (last[.budgetSpent] ?? 0) >= budget && last[.evalAccuracy] != nil
    }

    public var labels: [String] {
        var seen: [String] = []
        for run in runs where !seen.contains(run.label) { seen.append(run.label) }
        return seen
    }

    func group(_ label: String) -> [Run] { runs.filter { $0.label == label } }

    /// The budget grid of the curves: 0, 10%, ..., 100%.
    public var grid: [Double] { (0...10).map { budget * Double($0) / 10 } }

    /// Mean held-out accuracy over seeds with a 95% band, on the grid.
    public func accuracyChart(labels: [String]) -> BandChart {
        let series = labels.map { label in
            BandChart.Series(name: label, points: grid.map { x in
                let i = Interval(group(label).map { $0.accuracy(at: x) })
                return (x / 1000, i.mean, i.low, i.high)
            })
        }
        return BandChart(title: "held-out accuracy (greedy) over the token budget", xLabel: "tokens spent (thousands)",
                         yLabel: "accuracy", series: series, yRange: 0...Self.top(series))
    }

    /// The top of a [0, 1] quantity's axis: the highest band, at most 1.
    static func top(_ series: [BandChart.Series]) -> Double {
        let high = series.flatMap(\.points).map { $0.high.isFinite ? $0.high : $0.mean }.filter(\.isFinite).max() ?? 1
        return min(max(high, 0.01), 1)
    }

    /// The all-negative share of generated groups, averaged within each tenth of the budget.
    public func allNegativeChart(labels: [String]) -> BandChart {
        BandChart(title: "share of generated groups that are all-negative", xLabel: "tokens spent (thousands)",
                  yLabel: "all-negative share", series: labels.map { label in
            BandChart.Series(name: label, points: (1...10).map { bin -> (x: Double, mean: Double, low: Double, high: Double) in
                // The last tenth also takes the step that overshoots the budget.
                let low = grid[bin - 1], high = bin == 10 ? Double.infinity : grid[bin]
                let i = Interval(group(label).map { run in
                    let inside = run.steps.filter { $0.spent > low && $0.spent <= high }.map(\.allNegative)
                    return inside.isEmpty ? .nan : inside.reduce(0, +) / Double(inside.count)
                })
                return ((grid[bin - 1] + grid[bin]) / 2000, i.mean, i.low, i.high)
            })
        }, yRange: 0...1)
    }

    /// Final accuracy and step score against judge noise.
    public var noiseChart: BandChart {
        let sweep = noiseLabels
        func series(_ name: String, _ value: (Run) -> Double) -> BandChart.Series {
            BandChart.Series(name: name, points: sweep.map { label, eps in
                let i = Interval(group(label).map(value))
                return (eps, i.mean, i.low, i.high)
            })
        }
        let lines = [
            series("accuracy") { $0.evaluations.last!.accuracy },
            series("step score (RTS)") { $0.evaluations.last!.rts },
        ]
        return BandChart(title: "\(noiseStrategy) under judge noise (end of budget)", xLabel: "judge noise eps",
                         yLabel: "held-out", series: lines, yRange: 0...Self.top(lines))
    }

    /// (label, eps) of the noise sweep, eps = 0 first.
    public var noiseLabels: [(String, Double)] {
        [(noiseStrategy, 0)] + labels.compactMap { label in
            group(label).first.flatMap { $0.noise > 0 ? (label, $0.noise) : nil }
        }
    }

    /// Markdown tables: the strategies, then the noise sweep.
    public var table: String {
        var out = "| strategy | held-out accuracy | step score (RTS) | all-negative share | zero-advantage share | steps in budget |\n"
        out += "|---|---|---|---|---|---|\n"
        func row(_ label: String) -> String {
            let g = group(label)
            let accuracy = Interval(g.map { $0.evaluations.last!.accuracy })
            let rts = Interval(g.map { $0.evaluations.last!.rts })
            let negative = Interval(g.map { run in run.steps.map(\.allNegative).reduce(0, +) / Double(max(run.steps.count, 1)) })
            let zero = Interval(g.map { run in run.steps.map(\.zeroAdvantage).reduce(0, +) / Double(max(run.steps.count, 1)) })
            let steps = Interval(g.map { Double($0.steps.count) })
            return "| \(label) | \(accuracy.formatted(3)) | \(rts.formatted(3)) | \(negative.formatted(2)) | \(zero.formatted(2)) | \(steps.formatted(0)) |\n"
        }
        for label in labels where group(label).first.map({ $0.noise == 0 }) ?? false { out += row(label) }
        let start = Interval(runs.map { $0.evaluations.first!.accuracy })
        let startRTS = Interval(runs.map { $0.evaluations.first!.rts })
        out += "| (warm start, before RL) | \(Interval.format(start.mean, 3)) | \(Interval.format(startRTS.mean, 3)) | | | 0 |\n"
        out += "\n| judge noise eps (\(noiseStrategy)) | held-out accuracy | step score (RTS) | zero-advantage share |\n|---|---|---|---|\n"
        for (label, eps) in noiseLabels {
            let g = group(label)
            guard !g.isEmpty else { continue }
            let zero = Interval(g.map { run in run.steps.map(\.zeroAdvantage).reduce(0, +) / Double(max(run.steps.count, 1)) })
            out += "| \(String(format: "%g", eps)) | \(Interval(g.map { $0.evaluations.last!.accuracy }).formatted(3)) | "
                + "\(Interval(g.map { $0.evaluations.last!.rts }).formatted(3)) | \(zero.formatted(2)) |\n"
        }
        return out
    }

    /// Every evaluation of every run: label, seed, noise, tokens, accuracy, rts.
    public var evaluationsCSV: String {
        var out = "strategy,seed,noise,tokens,accuracy,rts\n"
        for run in runs {
            for e in run.evaluations { out += "\(run.label),\(run.seed),\(run.noise),\(Int(e.spent)),\(e.accuracy),\(e.rts)\n" }
        }
        return out
    }

    /// Writes summary.md, evaluations.csv, accuracy.svg, all_negative.svg, noise.svg.
    public func write(to directory: String) throws {
        func save(_ text: String, _ name: String) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: directory + "/" + name), options: .atomic)
        }
        let main = labels.filter { group($0).first.map { $0.noise == 0 } ?? false }
        try save(table, "summary.md")
        try save(evaluationsCSV, "evaluations.csv")
        try accuracyChart(labels: main).write(to: directory + "/accuracy.svg")
        try allNegativeChart(labels: main).write(to: directory + "/all_negative.svg")
        try noiseChart.write(to: directory + "/noise.svg")
    }
}
