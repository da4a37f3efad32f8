import ArgumentParser
import Foundation
import PrismCore
import PrismTrainer

/// `prism study`: the whole comparison of all-negative strategies, one command.
struct StudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "Rerun the study of Documentation/EXPERIMENTS.md: stylized model, then the transformer comparison.",
        discussion: """
            Stylized model (a few minutes): every strategy at the paper-like settings, a learning-rate \
            sweep, a judge-noise sweep, a hard first step against a hard last step, and SGPO's maps on a \
            4-step chain, into OUT/stylized/*. Transformer \
            (most of the hour): one warm start, every strategy with --seeds seeds on a matched token budget \
            (generated tokens, resampled groups and the judge's reading all count), SGPO with a judge the \
            budget does not charge, and a judge-noise sweep, into OUT/transformer. Rerunning continues: \
            finished runs are skipped and an interrupted one resumes from its checkpoint (Ctrl-C stops after \
            the current step); --fresh starts over.
            """)

    @Option(help: "Where everything goes.") var out = "runs/study"
    @Option(help: "Seeds per strategy in the transformer comparison.") var seeds = 3
    @Option(help: "Seeds per stylized variant.") var stylizedSeeds = 5
    @Option(help: "Token budget of each transformer run.") var budget = 600_000
    @Option(help: "Evaluate on the held-out problems every N steps.") var evalEvery = 10
    @Option(help: "Held-out problems.") var evalProblems = 200
    @Option(help: "Supervised warm-start steps.") var sftSteps = 1000
    @Option(help: "Terms per training and held-out problem.") var terms = 4
    @Option(help: "GRPO learning rate of the transformer runs.") var lr = 2e-4
    @Option(help: "Judge noise levels of the sweeps (comma-separated).") var noise = "0,0.1,0.3,0.5"
    @Option(help: "Only one part: stylized or transformer.") var only: String?
    @Flag(help: "Delete OUT first instead of continuing.") var fresh = false

    func run() throws {
        try reporting {
            guard only == nil || only == "stylized" || only == "transformer" else {
                throw TrainerError("--only: expected stylized or transformer, got '\(only!)'")
            }
            let noises = try SimulateCommand.numbers(noise, "--noise", in: 0...1)
            if fresh { try? FileManager.default.removeItem(atPath: out) }
            let started = Date()
            let progress = progressReporter()
            if only != "transformer" { try stylized(noises: noises, progress: progress) }
            if only != "stylized" {
                var settings = TransformerStudy.Settings()
                settings.directory = out + "/transformer"
                settings.seeds = try SimulateCommand.checked(seeds, "--seeds", 1...100)
                settings.tokenBudget = try SimulateCommand.checked(budget, "--budget", 1000...Int(Int32.max))
                settings.evalEvery = try SimulateCommand.checked(evalEvery, "--eval-every", 1...100_000)
                settings.evalProblems = try SimulateCommand.checked(evalProblems, "--eval-problems", 1...100_000)
                settings.sftSteps = try SimulateCommand.checked(sftSteps, "--sft-steps", 1...1_000_000)
                settings.terms = try SimulateCommand.checked(terms, "--terms", 2...5)
                settings.learningRate = lr
                settings.noises = noises
                Interrupt.install()
                var study = TransformerStudy(settings: settings, progress: progress) { try PluginLoading.components($0) }
                study.shouldStop = { Interrupt.requested != 0 }
                guard try study.run() else {
                    print("interrupted; run the same command again to continue")
                    return
                }
                let summary = try study.summary()
                try summary.write(to: settings.directory)
                print("\nTransformer, \(settings.terms)-term problems, budget \(settings.tokenBudget) tokens, \(settings.seeds) seeds (mean ± 95% interval):\n")
                print(summary.table, terminator: "")
                print("wrote \(settings.directory)/{summary.md,evaluations.csv,accuracy.svg,all_negative.svg,noise.svg}")
            }
            print(String(format: "study finished in %.0f s", Date().timeIntervalSince(started)))
        }
    }

    /// The stylized experiments, each into its own directory.
    func stylized(noises: [Double], progress: ProgressReporter) throws {
        var base = Simulation.Settings()
        base.seeds = try SimulateCommand.checked(stylizedSeeds, "--stylized-seeds", 1...1000)
        var experiments: [(String, String, Simulation.Settings)] = []
        experiments.append(("strategies", "every strategy, two steps, paper-like settings", base))
        var lr = base
        lr.learningRates = [0.25, 0.5, 1, 2, 4, 8, 16]
        experiments.append(("learning-rates", "every strategy at seven learning rates", lr))
        var noisy = base
        noisy.strategies = try StudyStrategy.parse("grpo,sgpo")
        noisy.noises = noises
        experiments.append(("noise", "judge noise", noisy))
        for (name, title, logits) in [("first-step-hard", "the first step is the hard one", [-3.0, 2.0]),
                                      ("last-step-hard", "the last step is the hard one", [2.0, -3.0])] {
            var bottleneck = base
            bottleneck.strategies = try StudyStrategy.parse("grpo,sgpo,dapo-filter")
            bottleneck.initialLogits = logits
            bottleneck.steps = 200
            experiments.append((name, title, bottleneck))
        }
        var maps = base
        maps.strategies = try StudyStrategy.parse("grpo,sgpo,sgpo-raw,sgpo-linear")
        maps.reasoningSteps = 4
        maps.initialLogits = [-1, -1, -1, -1]
        maps.steps = 400
        experiments.append(("maps", "SGPO's maps on a four-step chain", maps))
        for (index, (name, title, settings)) in experiments.enumerated() {
            progress.log("stylized model \(index + 1)/\(experiments.count): \(title)")
            let started = Date()
            let runs = try Simulation(settings: settings) { try PluginLoading.components($0) }.runAll()
            let summary = SimulationSummary(runs: runs, thresholds: settings.thresholds)
            try summary.write(to: "\(out)/stylized/\(name)")
            print("\nStylized model — \(title) (\(runs.count) runs, \(Int(Date().timeIntervalSince(started))) s):\n")
            print(settings.learningRates.count > 1 ? summary.tunedTable : summary.table, terminator: "")
            fflush(nil)  // the tables appear as each part finishes, also in a pipe
        }
    }
}
