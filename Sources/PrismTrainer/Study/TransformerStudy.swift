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

    /// The model: 2 layers, width 128, 4 heads, MLP 512, sequences up to 80;
    /// `tied`: the LM head tied to the token embedding; `sharePrefixes`: the
    /// transformer's `share_prefixes` (Decisions #59).
    public static func modelConfig(seed: Int, threads: Int = 0, tied: Bool = false, sharePrefixes: Bool = true) -> String {
        let options = (threads > 0 ? ", \"threads\": \(threads)" : "") + (tied ? ", \"tie_embeddings\": true" : "")
            + (sharePrefixes ? "" : ", \"share_prefixes\": false")
        return #"{"vocab": "0123456789+=;#", "d_model": 128, "layers": 2, "heads": 4, "d_ff": 512, "max_len": 80, "seed": \#(seed)\#(options)}"#
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
        /// The model's kernel threads (0 = every CPU).
        public var threads: Int
        /// The LM head tied to the token embedding.
        public var tied: Bool
        /// The transformer's `share_prefixes`: off in the study, whose
        /// recorded tables were measured computing every sequence whole.
        public var sharePrefixes: Bool

        public init(directory: String, terms: Int, evalProblems: Int, seed: Int, sftSteps: Int, threads: Int = 0,
                    tied: Bool = false, sharePrefixes: Bool = true, assignments: [String], reuseWarmStart: Bool) {
            self.threads = threads
            self.tied = tied
            self.sharePrefixes = sharePrefixes
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
        try base.set("model.config=" + modelConfig(seed: p.seed, threads: p.threads, tied: p.tied, sharePrefixes: p.sharePrefixes))
        // Several `prism study --shard` processes may want the same warm
        // start: the first trains it while the others wait on the lock.
        let lock = unsafe open(dir + "/warm-start.lock", O_CREAT | O_RDWR, 0o644)
        guard lock >= 0 else { throw TrainerError("\(dir)/warm-start.lock: cannot open (errno \(errno))") }
        defer { close(lock) }
        flock(lock, LOCK_EX)
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

/// The transformer-level comparison (`prism study`), in four sections:
/// - **main**: the strategies from one warm start, `seeds` seeds, a matched
///   token budget (generated tokens, resampled groups and the judge's
///   reading all count), plus `focus` with the judge not charged;
/// - **noise**: `focus` with a judge that misreports the first error;
/// - **ablation**: GRPO and sequence SGPO with one setting changed at a time
///   (the differences from an independent replication), then all together;
/// - **strong**: a stronger warm start and a longer budget.
/// Every evaluation reports the final-answer and the process-verified
/// held-out accuracy and the step score.
public struct TransformerStudy {
    public struct Settings: Sendable {
        public var directory = "runs/study/transformer"
        public var strategies = StudyStrategy.headline
        /// The strategy of the judge-free row, the noise sweep and the strong regime.
        public var focus = "sgpo-prefix"
        /// Judge noise levels of the sweep (eps = 0 is the main run).
        public var noises = [0.1, 0.3, 0.5]
        public var noiseSeeds = 2
        /// Also run `focus` with the judge's reading not charged to the
        /// budget (run.judge_token_cost = 0): the judge's cost apart from
        /// the method's effect.
        public var freeJudgeRuns = true
        public var seeds = 5
        /// Seeds per ablation row; 0 leaves the ablation out.
        public var ablationSeeds = 3
        /// Warm-start steps, budget and seeds of the strong regime; 0 seeds leaves it out.
        public var strongSFTSteps = 2000
        public var strongBudget = 900_000
        public var strongSeeds = 2
        /// Add an ablation row with all of the replication's settings at once (200 steps, costly).
        public var replicationRow = false
        /// Terms per training and held-out problem.
        public var terms = 4
        public var tokenBudget = 600_000
        public var evalEvery = 20
        public var evalProblems = 200
        public var sftSteps = 1000
        public var learningRate = 2e-4
        public var dataSeed = 0
        /// Kernel threads per run (0 = every CPU). Results are bit-exact for one value.
        public var threads = 0
        /// Run only the jobs `index % count == shard.index` (several processes side by side).
        public var shard = (index: 0, count: 1)

        public init() {}
    }

    public enum Section: String, Sendable, CaseIterable {
        case main, noise, ablation, strong
    }

    /// One row of a table: a strategy with settings, run with several seeds.
    public struct Variant: Sendable {
        public var label: String
        public var section: Section
        public var strategy: StudyStrategy
        public var noise: Double = 0
        /// What the ablation changed ("" elsewhere).
        public var change = ""
        /// Config assignments on top of the strategy's.
        public var extra: [String] = []
        /// Extra keys of the training judge's config, as JSON members (`"after_answer": "ignore"`).
        public var judgeOptions = ""
        public var seeds: Int
        /// The warm start's SFT steps.
        public var sftSteps: Int
        /// Whether the model's LM head is tied to its embedding (its own warm start).
        public var tied = false
        /// The token budget; 0 = a fixed number of steps (`run.steps` in `extra`).
        public var budget: Int
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

    /// One change of the ablation, against the main setting.
    public struct Change: Sendable {
        public var name: String
        /// Config assignments.
        public var extra: [String] = []
        /// Extra keys of the training judge's config.
        public var judgeOptions = ""
        /// The warm start's SFT steps.
        public var sftSteps: Int
        /// Whether GRPO can be affected (when not, its row reuses the main runs).
        public var affectsGRPO = true
        /// The LM head tied to the embedding (a warm start of its own).
        public var tied = false
    }

    /// The ablation's changes, one at a time: the differences of the
    /// independent replication (issue #11), and with `replicationRow` all
    /// of them at once.
    public static func ablationChanges(sftSteps: Int, replicationRow: Bool = false) -> [Change] {
        let process = #"reward.config={"verify": "process"}"#
        let shorter = ["grpo.max_new_tokens=40", "eval.max_new_tokens=40"]
        var changes = [
            Change(name: "process-verified reward", extra: [process], sftSteps: sftSteps),
            Change(name: "40 new tokens", extra: shorter, sftSteps: sftSteps),
            Change(name: "no gradient clipping", extra: ["optimizer.max_grad_norm=0"], sftSteps: sftSteps),
            Change(name: "1300 warm-start steps", sftSteps: 1300),
            Change(name: "judge not charged", extra: ["run.judge_token_cost=0"], sftSteps: sftSteps, affectsGRPO: false),
            Change(name: "lenient judge (text after the answer ignored)", judgeOptions: #""after_answer": "ignore""#,
                   sftSteps: sftSteps, affectsGRPO: false),
            Change(name: "LM head tied to the embedding", sftSteps: sftSteps, tied: true),
        ]
        if replicationRow {
            changes.append(Change(
                name: "all of the replication's settings (200 steps)",
                extra: [process, "optimizer.max_grad_norm=0", "run.token_budget=0", "run.steps=200",
                        "run.judge_token_cost=0"] + shorter,
                sftSteps: 1300, tied: true))
        }
        return changes
    }

    public var variants: [Variant] {
        let s = settings
        var out = s.strategies.map {
            Variant(label: $0.name, section: .main, strategy: $0, seeds: s.seeds, sftSteps: s.sftSteps, budget: s.tokenBudget)
        }
        guard let focus = StudyStrategy.all.first(where: { $0.name == s.focus }) else { return out }
        if s.freeJudgeRuns {
            out.append(Variant(label: "\(focus.name) judge-free", section: .main, strategy: focus,
                               extra: ["run.judge_token_cost=0"], seeds: s.seeds, sftSteps: s.sftSteps, budget: s.tokenBudget))
        }
        out += s.noises.filter { $0 > 0 }.map {
            Variant(label: "\(focus.name) eps=\(String(format: "%g", $0))", section: .noise, strategy: focus, noise: $0,
                    seeds: s.noiseSeeds, sftSteps: s.sftSteps, budget: s.tokenBudget)
        }
        if s.ablationSeeds > 0 {
            let pair = ["grpo", "sgpo"].map { name in StudyStrategy.all.first { $0.name == name }! }
            for change in Self.ablationChanges(sftSteps: s.sftSteps, replicationRow: s.replicationRow) {
                for strategy in pair where strategy.usesJudge || change.affectsGRPO {
                    let fixedSteps = change.extra.contains("run.token_budget=0")
                    out.append(Variant(label: "\(strategy.name), \(change.name)", section: .ablation, strategy: strategy,
                                       change: change.name, extra: change.extra, judgeOptions: change.judgeOptions,
                                       seeds: s.ablationSeeds, sftSteps: change.sftSteps, tied: change.tied,
                                       budget: fixedSteps ? 0 : s.tokenBudget))
                }
            }
        }
        if s.strongSeeds > 0 {
            var seen: [String] = []
            for name in ["grpo", "sgpo", focus.name] where !seen.contains(name) {
                seen.append(name)
                out.append(Variant(label: "\(name), strong warm start", section: .strong,
                                   strategy: StudyStrategy.all.first { $0.name == name }!,
                                   seeds: s.strongSeeds, sftSteps: s.strongSFTSteps, budget: s.strongBudget))
            }
        }
        return out
    }

    var dir: String { settings.directory }

    /// The data and the warm start with `sftSteps` steps (reused when there).
    public func prepare(sftSteps: Int, tied: Bool = false) throws -> ConfigFile {
        let s = settings
        return try ArithmeticRecipe.prepare(
            ArithmeticRecipe.Preparation(
                directory: "\(dir)/warm-\(sftSteps)\(tied ? "-tied" : "")", terms: s.terms, evalProblems: s.evalProblems,
                seed: s.dataSeed, sftSteps: sftSteps, threads: s.threads, tied: tied,
                // Its tables reproduce bit for bit: computed as when they were measured (Decisions #59).
                sharePrefixes: false,
                assignments: [
                    "eval.k=0", "optimizer.lr=\(s.learningRate)", "run.steps=100000",
                    "run.eval_every=\(s.evalEvery)", "run.eval_at_start=true", "run.checkpoint_every=\(s.evalEvery)",
                    "run.judge_token_cost=1", "run.log_samples=2", #"eval.judge_config={"noise": 0}"#,
                ],
                reuseWarmStart: true),
            load: load, progress: progress)
    }

    /// The config of one run.
    public func config(base: ConfigFile, variant: Variant, seed: Int) throws -> ConfigFile {
        var c = base
        let judge = "{\"noise\": \(variant.noise), \"seed\": \(seed)"
            + (variant.judgeOptions.isEmpty ? "" : ", " + variant.judgeOptions) + "}"
        for assignment in variant.strategy.assignments + [
            "seed=\(seed)", "judge.config=\(judge)", "run.token_budget=\(variant.budget)",
        ] + variant.extra { try c.set(assignment) }
        return c
    }

    public func runDirectory(_ variant: Variant, seed: Int) -> RunDirectory {
        let name = String(variant.label.lowercased().map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "=" ? $0 : "-" })
        return RunDirectory(path: "\(dir)/runs/\(name)/seed-\(seed)")
    }

    /// Whether a run is finished: its budget (or step limit) reached and evaluated.
    func isComplete(_ variant: Variant, _ directory: RunDirectory, base: ConfigFile) -> Bool {
        if variant.budget > 0 { return TransformerStudySummary.isComplete(directory, budget: Double(variant.budget)) }
        guard let last = try? directory.readMetrics().last, last.values[.evalAccuracy] != nil else { return false }
        let steps = (try? config(base: base, variant: variant, seed: 0).int("run.steps")) ?? Int.max
        return last.step >= steps
    }

    /// Every (variant, seed) in order.
    public var jobs: [(variant: Variant, seed: Int)] {
        variants.flatMap { v in (0..<v.seeds).map { (v, $0) } }
    }

    /// Runs (or continues) this shard's jobs; finished runs are skipped,
    /// interrupted ones resume from their last checkpoint. A warm start is
    /// prepared when the first job needs it (once, whatever the shards).
    /// - Returns: false when interrupted.
    public func run() throws -> Bool {
        var bases: [String: ConfigFile] = [:]
        let jobs = self.jobs
        let started = Date()
        for (index, (variant, seed)) in jobs.enumerated() where index % settings.shard.count == settings.shard.index {
            let key = "\(variant.sftSteps) \(variant.tied)"
            if bases[key] == nil { bases[key] = try prepare(sftSteps: variant.sftSteps, tied: variant.tied) }
            let base = bases[key]!
            let directory = runDirectory(variant, seed: seed)
            if isComplete(variant, directory, base: base) { continue }
            progress.log("[\(index + 1)/\(jobs.count)] \(variant.label) seed \(seed) (\(Int(Date().timeIntervalSince(started))) s so far)")
            let config = try config(base: base, variant: variant, seed: seed)
            let trainer = Trainer(config: config, directory: directory, components: try load(config), progress: progress)
            trainer.shouldStop = shouldStop
            // A run begun before continues (from step 0 when it has no checkpoint yet).
            if try trainer.run(resume: directory.holdsRun).interrupted { return false }
        }
        return true
    }

    /// The summary of the runs on disk (runs not there yet are left out).
    public func summary() throws -> TransformerStudySummary {
        var runs: [TransformerStudySummary.Run] = []
        for variant in variants {
            for seed in 0..<variant.seeds {
                let directory = runDirectory(variant, seed: seed)
                guard FileManager.default.fileExists(atPath: directory.metricsPath) else { continue }
                var run = try TransformerStudySummary.Run(label: variant.label, noise: variant.noise, seed: seed,
                                                          directory: directory)
                run.section = variant.section
                run.change = variant.change
                run.strategy = variant.strategy.name
                runs.append(run)
            }
        }
        return TransformerStudySummary(runs: runs, budget: Double(settings.tokenBudget), noiseStrategy: settings.focus)
    }
}

/// Tables, curves and charts of the transformer study's runs.
public struct TransformerStudySummary {
    /// What one evaluation measured.
    public struct Evaluated: Sendable {
        public var spent: Double
        /// Final-answer and process-verified held-out accuracy.
        public var accuracy: Double
        public var processAccuracy: Double
        public var rts: Double
    }

    /// One run's metrics.
    public struct Run {
        public var label: String
        public var noise: Double
        public var seed: Int
        public var section = TransformerStudy.Section.main
        /// The ablation's change, or "".
        public var change = ""
        public var strategy = ""
        /// Every evaluation, step 0 included.
        public var evaluations: [Evaluated] = []
        /// (budget spent, all-negative share of generated groups, zero-advantage share) per step.
        public var steps: [(spent: Double, allNegative: Double, zeroAdvantage: Double)] = []

        public init(label: String, noise: Double, seed: Int, directory: RunDirectory) throws {
            self.label = label
            self.noise = noise
            self.seed = seed
            strategy = label
            for (_, line) in try directory.readMetrics() {
                let spent = line[.budgetSpent] ?? 0
                if let accuracy = line[.evalAccuracy] {
                    evaluations.append(Evaluated(spent: spent, accuracy: accuracy,
                                                 processAccuracy: line[.evalProcessAccuracy] ?? .nan,
                                                 rts: line[.evalRts] ?? .nan))
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

        var final: Evaluated { evaluations.last! }
        var meanAllNegative: Double { steps.map(\.allNegative).reduce(0, +) / Double(max(steps.count, 1)) }
        var meanZeroAdvantage: Double { steps.map(\.zeroAdvantage).reduce(0, +) / Double(max(steps.count, 1)) }
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
    /// The labels of a section; the main section's without the noisy runs
    /// (those are the noise sweep's, wherever they were run).
    func labels(in section: TransformerStudy.Section) -> [String] {
        labels.filter { label in
            guard let first = group(label).first else { return false }
            return section == .noise ? first.noise > 0 : first.section == section && first.noise == 0
        }
    }

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
        return BandChart(title: "held-out accuracy (greedy, final answer) over the token budget",
                         xLabel: "tokens spent (thousands)", yLabel: "accuracy", series: series,
                         yRange: 0...Self.top(series))
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
            series("accuracy") { $0.final.accuracy },
            series("process-verified accuracy") { $0.final.processAccuracy },
            series("step score (RTS)") { $0.final.rts },
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

    /// `label`'s final value minus GRPO's, seed by seed (the seeds both ran).
    func pairedGain(_ runs: [Run], over baseline: [Run], _ value: (Run) -> Double) -> Interval {
        Interval(runs.compactMap { run in baseline.first { $0.seed == run.seed }.map { value(run) - value($0) } })
    }

    static let columns = "held-out accuracy | process-verified accuracy | step score (RTS) | all-negative share | zero-advantage share | steps"

    func cells(_ g: [Run]) -> String {
        "\(Interval(g.map(\.final.accuracy)).formatted(3)) | \(Interval(g.map(\.final.processAccuracy)).formatted(3)) | "
            + "\(Interval(g.map(\.final.rts)).formatted(3)) | \(Interval(g.map(\.meanAllNegative)).formatted(2)) | "
            + "\(Interval(g.map(\.meanZeroAdvantage)).formatted(2)) | \(Interval(g.map { Double($0.steps.count) }).formatted(0))"
    }

    /// Markdown tables, one per section that has runs.
    public var table: String {
        var out = ""
        let grpo = group("grpo")
        let main = labels(in: .main)
        if !main.isEmpty {
            out += "| strategy | \(Self.columns) | accuracy gain over grpo (paired) |\n|---|---|---|---|---|---|---|---|\n"
            for label in main {
                let g = group(label)
                let gain = label == "grpo" || grpo.isEmpty ? "—" : pairedGain(g, over: grpo, \.final.accuracy).formatted(3)
                out += "| \(label) | \(cells(g)) | \(gain) |\n"
            }
            let starts = runs.filter { $0.section == .main }
            out += "| (warm start, before RL) | \(Interval.format(Interval(starts.map { $0.evaluations[0].accuracy }).mean, 3)) | "
                + "\(Interval.format(Interval(starts.map { $0.evaluations[0].processAccuracy }).mean, 3)) | "
                + "\(Interval.format(Interval(starts.map { $0.evaluations[0].rts }).mean, 3)) | | | 0 | |\n"
        }
        if !labels(in: .noise).isEmpty {
            out += "\n| judge noise eps (\(noiseStrategy)) | held-out accuracy | process-verified accuracy | step score (RTS) | zero-advantage share |\n|---|---|---|---|---|\n"
            for (label, eps) in noiseLabels {
                let g = group(label)
                guard !g.isEmpty else { continue }
                out += "| \(String(format: "%g", eps)) | \(Interval(g.map(\.final.accuracy)).formatted(3)) | "
                    + "\(Interval(g.map(\.final.processAccuracy)).formatted(3)) | \(Interval(g.map(\.final.rts)).formatted(3)) | "
                    + "\(Interval(g.map(\.meanZeroAdvantage)).formatted(2)) |\n"
            }
        }
        let ablation = runs.filter { $0.section == .ablation }
        if !ablation.isEmpty {
            out += "\n| changed (one at a time) | grpo accuracy | sgpo accuracy | sgpo − grpo (paired) | grpo process-verified | sgpo process-verified | sgpo step score |\n|---|---|---|---|---|---|---|\n"
            var changes: [String] = []
            for run in ablation where !changes.contains(run.change) { changes.append(run.change) }
            let seeds = Set(ablation.map(\.seed))
            func row(_ name: String, _ g: [Run], _ s: [Run]) -> String {
                "| \(name) | \(Interval(g.map(\.final.accuracy)).formatted(3)) | \(Interval(s.map(\.final.accuracy)).formatted(3)) | "
                    + "\(pairedGain(s, over: g, \.final.accuracy).formatted(3)) | \(Interval(g.map(\.final.processAccuracy)).formatted(3)) | "
                    + "\(Interval(s.map(\.final.processAccuracy)).formatted(3)) | \(Interval(s.map(\.final.rts)).formatted(3)) |\n"
            }
            out += row("nothing (the main runs, same seeds)", grpo.filter { seeds.contains($0.seed) },
                       group("sgpo").filter { seeds.contains($0.seed) })
            for change in changes {
                let here = ablation.filter { $0.change == change }
                let g = here.filter { $0.strategy == "grpo" }
                out += row(change, g.isEmpty ? grpo.filter { seeds.contains($0.seed) } : g, here.filter { $0.strategy == "sgpo" })
            }
        }
        let strong = labels(in: .strong)
        if !strong.isEmpty {
            out += "\n| strong warm start | \(Self.columns) | accuracy gain over grpo (paired) |\n|---|---|---|---|---|---|---|---|\n"
            let base = strong.first { $0.hasPrefix("grpo,") }.map(group) ?? []
            for label in strong {
                let g = group(label)
                let gain = label.hasPrefix("grpo,") || base.isEmpty ? "—" : pairedGain(g, over: base, \.final.accuracy).formatted(3)
                out += "| \(label) | \(cells(g)) | \(gain) |\n"
            }
            let starts = strong.flatMap(group)
            out += "| (warm start, before RL) | \(Interval.format(Interval(starts.map { $0.evaluations[0].accuracy }).mean, 3)) | "
                + "\(Interval.format(Interval(starts.map { $0.evaluations[0].processAccuracy }).mean, 3)) | "
                + "\(Interval.format(Interval(starts.map { $0.evaluations[0].rts }).mean, 3)) | | | 0 | |\n"
        }
        return out
    }

    /// Every evaluation of every run (labels quoted: ablation labels hold commas).
    public var evaluationsCSV: String {
        var out = "strategy,seed,noise,tokens,accuracy,process_accuracy,rts\n"
        for run in runs {
            let label = "\"" + run.label.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            for e in run.evaluations {
                out += "\(label),\(run.seed),\(run.noise),\(Int(e.spent)),\(e.accuracy),\(e.processAccuracy),\(e.rts)\n"
            }
        }
        return out
    }

    /// Writes summary.md, evaluations.csv, accuracy.svg, all_negative.svg, noise.svg.
    public func write(to directory: String) throws {
        func save(_ text: String, _ name: String) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: directory + "/" + name), options: .atomic)
        }
        let main = labels(in: .main)
        try save(table, "summary.md")
        try save(evaluationsCSV, "evaluations.csv")
        try accuracyChart(labels: main).write(to: directory + "/accuracy.svg")
        try allNegativeChart(labels: main).write(to: directory + "/all_negative.svg")
        try noiseChart.write(to: directory + "/noise.svg")
    }
}
