import Foundation

/// The stylized-model part of `prism study`: its experiments, each into a
/// directory of its own with a summary table.
public enum StylizedStudy {
    public struct Experiment: Sendable {
        /// Directory name under OUT/stylized.
        public var name: String
        public var title: String
        public var settings: Simulation.Settings
    }

    /// Every strategy at paper-like settings, a learning-rate sweep, judge
    /// noise, a hard first step against a hard last step, and SGPO's maps and
    /// credit rules on a four-step chain; `seeds` seeds per variant.
    public static func experiments(seeds: Int, noises: [Double]) throws -> [Experiment] {
        var base = Simulation.Settings()
        base.seeds = seeds
        var out = [Experiment(name: "strategies", title: "every strategy, two steps, paper-like settings", settings: base)]
        var lr = base
        lr.learningRates = [0.25, 0.5, 1, 2, 4, 8, 16]
        // The estimators' step sizes differ; the credit rules do not change them.
        lr.strategies = base.strategies.filter { !["sgpo-prefix", "sgpo-split"].contains($0.name) }
        out.append(Experiment(name: "learning-rates", title: "every strategy at seven learning rates", settings: lr))
        var noisy = base
        noisy.strategies = try StudyStrategy.parse("grpo,sgpo")
        noisy.noises = noises
        out.append(Experiment(name: "noise", title: "judge noise", settings: noisy))
        for (name, title, logits) in [("first-step-hard", "the first step is the hard one", [-3.0, 2.0]),
                                      ("last-step-hard", "the last step is the hard one", [2.0, -3.0])] {
            var bottleneck = base
            bottleneck.strategies = try StudyStrategy.parse("grpo,sgpo,dapo-filter")
            bottleneck.initialLogits = logits
            bottleneck.steps = 200
            out.append(Experiment(name: name, title: title, settings: bottleneck))
        }
        var maps = base
        maps.strategies = try StudyStrategy.parse("grpo,sgpo,sgpo-raw,sgpo-linear")
        maps.reasoningSteps = 4
        maps.initialLogits = [-1, -1, -1, -1]
        maps.steps = 400
        out.append(Experiment(name: "maps", title: "SGPO's maps on a four-step chain", settings: maps))
        var credit = maps
        credit.strategies = try StudyStrategy.parse("grpo,sgpo,sgpo-prefix,sgpo-split")
        out.append(Experiment(name: "credit", title: "SGPO's credit rules on a four-step chain", settings: credit))
        return out
    }

    /// Runs `experiments`, writing each summary to `out/stylized/<name>` and
    /// handing its table to `report` as soon as it is done.
    public static func run(_ experiments: [Experiment], out: String, progress: ProgressReporter,
                           load: @escaping (ConfigFile) throws -> Components, report: (String) -> Void) throws {
        for (index, experiment) in experiments.enumerated() {
            progress.log("stylized model \(index + 1)/\(experiments.count): \(experiment.title)")
            let started = Date()
            let settings = experiment.settings
            let runs = try Simulation(settings: settings, load: load).runAll()
            let summary = SimulationSummary(runs: runs, thresholds: settings.thresholds)
            try summary.write(to: "\(out)/stylized/\(experiment.name)")
            report("\nStylized model — \(experiment.title) (\(runs.count) runs, \(Int(Date().timeIntervalSince(started))) s):\n\n"
                + (settings.learningRates.count > 1 ? summary.tunedTable : summary.table))
        }
    }
}
