import Foundation
import PrismCore

/// `prism demo`, the main job: one warm start, then GRPO, sequence SGPO and
/// SGPO with a step-level credit rule from it, with the same seed and steps
/// on 5-term problems, where most groups are all-negative, and a table
/// comparing them.
public struct Demo {
    public struct Settings: Sendable {
        /// Where data, runs and reports go.
        public var directory = "runs/demo"
        public var sftSteps = 1000
        /// GRPO steps per strategy.
        public var steps = 80
        public var evalProblems = 200
        public var seed = 0
        /// The strategies compared (names of `StudyStrategy.all`).
        public var strategies = ["grpo", "sgpo", "sgpo-prefix"]

        public init() {}
    }

    /// One trained strategy: its summary and its mean group shares.
    public struct Row: Sendable {
        public var strategy: String
        public var evaluation: Evaluation?
        /// Shares of groups over the steps: all-negative, zero-advantage, diversified.
        public var allNegative, zeroAdvantage, diversified: Double
    }

    public struct Result: Sendable {
        /// The warm-start model before any RL.
        public var start: Evaluation
        public var rows: [Row]
        public var evalProblems: Int
        public var directory: String

        /// The comparison as printed by `prism demo`.
        public var table: String {
            var out = "strategy     held-out acc    process-verified  step score  pass@4  all-negative  zero-advantage  diversified\n"
            out += "start      " + String(format: "  %.3f ± %.3f   %.3f             %.3f       %.3f   (the warm-start model, before RL)\n",
                                        start.accuracy, start.accuracyStandardError, start.processAccuracy, start.meanRTS,
                                        start.passAtK)
            for row in rows {
                let e = row.evaluation
                out += row.strategy.padding(toLength: 11, withPad: " ", startingAt: 0)
                    + String(format: "  %.3f ± %.3f   %.3f             %.3f       %.3f   %.2f          %.2f            %.2f\n",
                             e?.accuracy ?? .nan, e?.accuracyStandardError ?? .nan, e?.processAccuracy ?? .nan,
                             e?.meanRTS ?? .nan, e?.passAtK ?? .nan, row.allNegative, row.zeroAdvantage, row.diversified)
            }
            return out + """

                all-negative, zero-advantage and diversified are shares of groups averaged over the training steps.
                Held-out accuracy is greedy on \(evalProblems) problems (± one standard error), counting a right final
                answer; process-verified counts only answers right at every step that end after the answer; step
                score is the judge's fraction of the solution before the first error.
                \(Demo.reading)
                Reports: \(directory)/report.html (all runs), \(rows.map { "\(directory)/\($0.strategy)/report.html" }.joined(separator: ", "))

                """
        }
    }

    /// What the table shows, in plain words (from the study's results,
    /// Documentation/EXPERIMENTS.md §3).
    static let reading = """
        What to look at: the zero-advantage share (groups that teach nothing) stays at the all-negative share
        for GRPO and is small for SGPO, and the step score falls under GRPO and rises under SGPO. In the
        default run (80 steps on 5-term problems) final-answer accuracy is within noise of the start for all
        three, and one seed settles nothing. The evidence is the study (Documentation/EXPERIMENTS.md §3: 4-term problems,
        5 seeds): sequence SGPO collapses after this weak warm start, prefix credit (only the tokens before
        the judge's first error) avoids the collapse and, with the judge not charged, matches GRPO's
        final-answer accuracy while raising process-verified accuracy and the step score.
        """

    public var settings: Settings
    public var progress: ProgressReporter
    public var load: (ConfigFile) throws -> Components

    public init(settings: Settings, progress: ProgressReporter, load: @escaping (ConfigFile) throws -> Components) {
        self.settings = settings
        self.progress = progress
        self.load = load
    }

    /// Data, warm start, the start model's evaluation, each strategy, and
    /// DIR/report.html with all runs.
    public func run() throws -> Result {
        let s = settings
        let dir = s.directory
        let everyQuarter = max(s.steps / 4, 1)
        let base = try ArithmeticRecipe.prepare(
            ArithmeticRecipe.Preparation(
                directory: dir, terms: 5, evalProblems: s.evalProblems, seed: s.seed, sftSteps: s.sftSteps,
                assignments: [
                    "seed=\(s.seed)", "run.steps=\(s.steps)", "run.eval_every=\(everyQuarter)",
                    "run.checkpoint_every=\(everyQuarter)", "eval.k=4", "optimizer.lr=2e-4",
                ],
                reuseWarmStart: false),
            load: load, progress: progress)
        let components = try load(base)
        try components.backend.load(from: base.string("model.checkpoint"))
        let start = try Evaluation.run(
            examples: try JSONL.read(Example.self, from: dir + "/eval.jsonl"),
            greedy: try Policy(backend: components.backend, sampler: components.greedySampler, temperature: 1),
            sampled: try Policy(backend: components.backend, sampler: components.sampler, temperature: 1), k: 4,
            reward: components.reward, judge: components.judge, maxNewTokens: 60, seed: UInt64(s.seed))
        var rows: [Row] = []
        for strategy in s.strategies {
            guard let named = StudyStrategy.all.first(where: { $0.name == strategy }) else {
                throw TrainerError("demo: unknown strategy '\(strategy)'; expected one of \(StudyStrategy.names.joined(separator: ", "))")
            }
            var config = base
            for assignment in named.assignments { try config.set(assignment) }
            progress.log("training \(strategy) for \(s.steps) steps")
            let trainer = Trainer(config: config, directory: RunDirectory(path: "\(dir)/\(strategy)"),
                                  components: try load(config), progress: progress)
            // A rerun of the demo moves its previous run aside (never deletes it).
            let summary = try trainer.run(Trainer.Start(overwrite: true))
            let shares = try Self.meanShares(trainer.directory)
            rows.append(Row(strategy: strategy, evaluation: summary.evaluation, allNegative: shares[0],
                            zeroAdvantage: shares[1], diversified: shares[2]))
        }
        try Report.write(runs: s.strategies.map { RunDirectory(path: "\(dir)/\($0)") }, to: dir + "/report.html")
        return Result(start: start, rows: rows, evalProblems: s.evalProblems, directory: dir)
    }

    /// Mean shares of all-negative, zero-advantage and diversified groups over a run's steps.
    static func meanShares(_ run: RunDirectory) throws -> [Double] {
        let metrics: [Metric] = [.groupsAllNegative, .groupsZeroAdvantage, .groupsDiversified]
        var sums = [Double](repeating: 0, count: metrics.count)
        var steps = 0.0
        for (_, line) in try run.readMetrics() {
            guard let total = line[.groupsTotal], total > 0 else { continue }
            steps += 1
            for (i, metric) in metrics.enumerated() { sums[i] += (line[metric] ?? 0) / total }
        }
        return sums.map { $0 / max(steps, 1) }
    }
}
