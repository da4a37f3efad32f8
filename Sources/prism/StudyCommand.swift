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
            sweep, a judge-noise sweep, a hard first step against a hard last step, SGPO's maps on a \
            4-step chain, and the credit rules, into OUT/stylized/*. Transformer (hours; \
            Documentation/EXPERIMENTS.md §3), into OUT/transformer: GRPO, DAPO filtering and SGPO with each \
            credit rule from one warm start on a matched token budget (generated tokens, resampled groups \
            and the judge's reading all count) with --seeds seeds, --focus with the judge not charged, a \
            judge-noise sweep of --focus, the one-at-a-time ablation of GRPO against sequence SGPO, and a \
            stronger warm start with a longer budget. Rerunning continues: finished runs are skipped and an \
            interrupted one resumes from its checkpoint (Ctrl-C stops after the current step); --fresh \
            starts over. --shard i/n runs every n-th job, so n processes can share the work (start the \
            others once the first has written its warm starts); --summary-only writes the tables of what \
            is on disk.
            """)

    @Option(help: "Where everything goes.") var out = "runs/study"
    @Option(help: "Transformer strategies: a comma-separated list of \(StudyStrategy.names.joined(separator: ", ")).")
    var strategies = TransformerStudy.Settings().strategies.map(\.name).joined(separator: ",")
    @Option(help: "The strategy of the judge-free row, the noise sweep and the strong regime.")
    var focus = TransformerStudy.Settings().focus
    @Option(help: "Seeds per strategy in the transformer comparison.") var seeds = 5
    @Option(help: "Seeds per point of the transformer noise sweep.") var noiseSeeds = 2
    @Option(help: "Seeds per row of the ablation (0 = no ablation).") var ablationSeeds = 3
    @Option(help: "Seeds per strategy of the strong regime (0 = leave it out).") var strongSeeds = 2
    @Option(help: "Warm-start steps of the strong regime.") var strongSftSteps = 2000
    @Option(help: "Token budget of the strong regime.") var strongBudget = 900_000
    @Flag(help: "Add an ablation row with all of the replication's settings at once (200 steps, 1300 SFT steps, tied head).")
    var replicationRow = false
    @Option(help: "Seeds per stylized variant.") var stylizedSeeds = 5
    @Option(help: "Token budget of each transformer run.") var budget = 600_000
    @Option(help: "Evaluate on the held-out problems every N steps.") var evalEvery = 20
    @Option(help: "Held-out problems.") var evalProblems = 200
    @Option(help: "Supervised warm-start steps.") var sftSteps = 1000
    @Option(help: "Terms per training and held-out problem.") var terms = 4
    @Option(help: "GRPO learning rate of the transformer runs.") var lr = 2e-4
    @Option(help: "Judge noise levels of the sweeps (comma-separated).") var noise = "0,0.1,0.3,0.5"
    @Option(help: "Kernel threads per transformer run (0 = every CPU).") var threads = 0
    @Option(help: "Run only every n-th transformer job, starting at i (i/n, e.g. 1/2).") var shard = "0/1"
    @Option(help: "Only one part: stylized or transformer.") var only: String?
    @Flag(help: "Write the transformer tables from the runs on disk without running anything.") var summaryOnly = false
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
                settings.strategies = try StudyStrategy.parse(strategies)
                guard StudyStrategy.names.contains(focus) else {
                    throw TrainerError("--focus: unknown strategy '\(focus)'; expected one of \(StudyStrategy.names.joined(separator: ", "))")
                }
                settings.focus = focus
                settings.noiseSeeds = try SimulateCommand.checked(noiseSeeds, "--noise-seeds", 1...100)
                settings.ablationSeeds = try SimulateCommand.checked(ablationSeeds, "--ablation-seeds", 0...100)
                settings.strongSeeds = try SimulateCommand.checked(strongSeeds, "--strong-seeds", 0...100)
                settings.strongSFTSteps = try SimulateCommand.checked(strongSftSteps, "--strong-sft-steps", 1...1_000_000)
                settings.strongBudget = try SimulateCommand.checked(strongBudget, "--strong-budget", 1000...Int(Int32.max))
                settings.threads = try SimulateCommand.checked(threads, "--threads", 0...16)
                settings.replicationRow = replicationRow
                let parts = shard.split(separator: "/").compactMap { Int($0) }
                guard parts.count == 2, parts[1] >= 1, (0..<parts[1]).contains(parts[0]) else {
                    throw TrainerError("--shard: expected i/n with 0 <= i < n, got '\(shard)'")
                }
                settings.shard = (parts[0], parts[1])
                Interrupt.install()
                var study = TransformerStudy(settings: settings, progress: progress) { try ComponentLoader.components($0) }
                study.shouldStop = { Interrupt.requested }
                if !summaryOnly {
                    guard try study.run() else {
                        print("interrupted; run the same command again to continue")
                        throw ExitCode(Interrupt.exitStatus ?? 130)
                    }
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
