import ArgumentParser
import Foundation
import PrismCore
import PrismRuntime
import PrismSignals
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
                var study = TransformerStudy(settings: settings, progress: progress) { try ComponentLoader.components($0) }
                study.shouldStop = { Interrupt.requested }
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
        let seeds = try SimulateCommand.checked(stylizedSeeds, "--stylized-seeds", 1...1000)
        try StylizedStudy.run(try StylizedStudy.experiments(seeds: seeds, noises: noises), out: out, progress: progress,
                              load: { try ComponentLoader.components($0) }) { table in
            print(table, terminator: "")
            fflush(nil)  // the tables appear as each part finishes, also in a pipe
        }
    }
}
