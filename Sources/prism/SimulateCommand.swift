import ArgumentParser
import Foundation
import PrismCore
import PrismRuntime
import PrismSignals
import PrismTrainer

/// `prism simulate`: the stylized-model study.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Compare all-negative strategies on the stylized n-step model, through the real GRPO loop.",
        discussion: """
            The stylized backend plugin (PrismStylized) is a tabular policy: step k of a chain succeeds with \
            probability sigmoid(theta_k) and is tried only if the earlier steps succeeded; a response is \
            correct iff all steps succeed; the judge's RTS is the fraction of steps before the first failure, \
            misreported with probability --noise. Prints time-to-threshold in steps and in budget tokens \
            (generated, resampled and judged) as mean ± 95% interval over seeds, \
            and writes OUT/curves.csv, time_to_threshold.csv, summary.md, p_correct.svg, all_negative.svg.
            """)

    @Option(help: "Strategies: all, or a comma-separated list of \(StudyStrategy.names.joined(separator: ", ")).")
    var strategies = "all"
    @Option(help: "Judge noise levels eps (comma-separated); judge-using strategies run at each.")
    var noise = "0"
    @Option(help: "Seeds per strategy.") var seeds = 5
    @Option(help: "First seed.") var firstSeed = 0
    @Option(help: "GRPO steps per run.") var steps = 300
    @Option(help: "Group size G.") var groupSize = 8
    @Option(help: "Groups (prompts) per step.") var groups = 64
    @Option(help: "Reasoning steps n of the model.") var reasoningSteps = 2
    @Option(help: "Initial logits: one number, or n comma-separated numbers.") var initial = "-2.5"
    @Option(help: "Learning rates (plain SGD on the mean of A * grad log pi), comma-separated: several = a sweep.")
    var lr = "0.5"
    @Option(help: "Thresholds of P(correct) for time-to-threshold (comma-separated).") var thresholds = "0.5,0.9"
    @Option(help: "Budget tokens charged per token the judge reads (0 = a free judge).") var judgeTokenCost = 1.0
    @Option(help: "Where to write the CSV files, summary and charts.") var out = "runs/simulate"
    @Flag(help: "Also print the exact expected GRPO and SGPO update (each credit rule) at the initial logits.") var theory = false

    func run() throws {
        try reporting {
            var settings = Simulation.Settings()
            settings.strategies = try StudyStrategy.parse(strategies)
            settings.noises = try Self.numbers(noise, "--noise", in: 0...1)
            settings.seeds = try Self.checked(seeds, "--seeds", 1...1000)
            settings.firstSeed = try Self.checked(firstSeed, "--first-seed", 0...Int(Int32.max) - 1000)
            settings.steps = try Self.checked(steps, "--steps", 1...1_000_000)
            settings.groupSize = try Self.checked(groupSize, "--group-size", 2...1024)
            settings.groups = try Self.checked(groups, "--groups", 1...100_000)
            settings.reasoningSteps = try Self.checked(reasoningSteps, "--reasoning-steps", 1...64)
            let logits = try Self.numbers(initial, "--initial", in: -50...50)
            guard logits.count == 1 || logits.count == reasoningSteps else {
                throw TrainerError("--initial: expected one number or \(reasoningSteps) (one per reasoning step), got \(logits.count)")
            }
            settings.initialLogits = logits.count == 1 ? Array(repeating: logits[0], count: reasoningSteps) : logits
            settings.learningRates = try Self.numbers(lr, "--lr", in: 1e-9...1000)
            settings.thresholds = try Self.numbers(thresholds, "--thresholds", in: 0...1)
            guard (0...1000).contains(judgeTokenCost) else {
                throw TrainerError("--judge-token-cost: expected a number in 0...1000, got \(judgeTokenCost)")
            }
            settings.judgeTokenCost = judgeTokenCost

            if theory {
                let g = settings.groupSize, theta = settings.initialLogits
                let q = StylizedTheory.outcomeProbabilities(logits: theta)
                print("exact expected update per group at theta = \(theta), G = \(g) (P(correct) = \(q.last!)):")
                print("  grpo        \(StylizedTheory.expectedUpdate(logits: theta, groupSize: g, rule: .grpo))")
                for credit in CreditRule.allCases {
                    let name = credit == .sequence ? "sgpo" : "sgpo-\(credit.rawValue)"
                    let update = StylizedTheory.expectedUpdate(logits: theta, groupSize: g, rule: .sgpo(.sigmoid(), credit: credit))
                    print("  \(name.padding(toLength: 12, withPad: " ", startingAt: 0))\(update)")
                }
            }

            let simulation = Simulation(settings: settings) { try ComponentLoader.components($0) }
            let progress = progressReporter()
            let started = Date()
            let runs = try simulation.runAll { run, done, total in
                let reached = settings.thresholds.map { t in run.steps(toReach: t).map { "P>\(t) at step \($0)" } ?? "P>\(t) never" }
                progress.log(String(format: "[%d/%d] %@ seed %d: P(correct) %.3f -> %.3f; ", done, total, run.label, run.seed,
                                    run.pCorrect.first!, run.pCorrect.last!) + reached.joined(separator: ", "))
            }
            let summary = SimulationSummary(runs: runs, thresholds: settings.thresholds)
            try summary.write(to: out)
            print(summary.table, terminator: "")
            if settings.learningRates.count > 1 {
                print("\nBest learning rate per strategy:\n")
                print(summary.tunedTable, terminator: "")
            }
            print(String(format: "%d runs in %.0f s; wrote %@/{curves.csv,time_to_threshold.csv,summary.md,p_correct.svg,all_negative.svg}",
                         runs.count, Date().timeIntervalSince(started), out))
        }
    }

    static func numbers(_ list: String, _ option: String, in range: ClosedRange<Double>) throws -> [Double] {
        let values = list.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0.map(range.contains) ?? false }) else {
            throw TrainerError("\(option): expected comma-separated numbers in \(range.lowerBound)...\(range.upperBound), got '\(list)'")
        }
        return values.map { $0! }
    }

    static func checked(_ value: Int, _ option: String, _ range: ClosedRange<Int>) throws -> Int {
        guard range.contains(value) else {
            throw TrainerError("\(option): expected an integer in \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
        return value
    }
}
