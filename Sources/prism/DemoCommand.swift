import ArgumentParser
import Foundation
import PrismRuntime
import PrismTrainer

/// The main job: GRPO against SGPO (sequence credit and a step-level credit
/// rule) on multi-step arithmetic, with embedded defaults, no network, a
/// quarter of an hour on two cores.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Warm-start a small transformer, then train GRPO and SGPO (sequence and prefix credit) alike and compare them.",
        discussion: """
            Generates arithmetic data; SFT on easy problems (2-3 terms, with 10% 4-5-term ones mixed in); \
            then GRPO, SGPO with sequence credit and SGPO with prefix credit from that model with the same \
            seed and steps on 5-term problems, where most groups are all-negative; evaluates each on \
            held-out problems (final-answer and process-verified accuracy); prints a table and writes \
            DIR/<strategy>/report.html and DIR/report.html (all side by side).
            """)

    @Option(help: "Where to write data, runs and reports.") var dir = "runs/demo"
    @Option(help: "Supervised warm-start steps.") var sftSteps = 1000
    @Option(help: "GRPO steps per strategy.") var steps = 80
    @Option(help: "Held-out problems.") var evalProblems = 200
    @Option(help: "Seed of the whole demo.") var seed = 0

    func run() throws {
        try reporting {
            let started = Date()
            var settings = Demo.Settings()
            settings.directory = dir
            settings.sftSteps = sftSteps
            settings.steps = steps
            settings.evalProblems = evalProblems
            settings.seed = seed
            let result = try Demo(settings: settings, progress: progressReporter()) {
                try ComponentLoader.components($0)
            }.run()
            print("\n" + result.table, terminator: "")
            print(String(format: "demo finished in %.0f s", Date().timeIntervalSince(started)))
        }
    }
}
