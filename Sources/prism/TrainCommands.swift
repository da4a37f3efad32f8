import ArgumentParser
import Foundation
import PrismCore
import PrismHost
import PrismRuntime
import PrismSignals
import PrismTrainer

/// Options shared by the commands that read a training config.
struct ConfigOptions: ParsableArguments {
    @Argument(help: "A YAML config (see Documentation/Config.md); omit to use the defaults.")
    var config: String?

    @Option(name: .customLong("set"), help: "Override a key: --set grpo.group_size=4 (repeatable).")
    var overrides: [String] = []

    func load(resumeFrom run: String? = nil) throws -> ConfigFile {
        var file: ConfigFile
        if let run {
            file = try ConfigFile(path: RunDirectory(path: run).configPath)
        } else if let config {
            file = try ConfigFile(path: config)
        } else {
            file = ConfigFile()
        }
        for assignment in overrides { try file.set(assignment) }
        return file
    }
}

/// Prints a one-line error and exits with the documented status: 1 for
/// the errors a person can act on (config, data, plugins that do not
/// load), 3 when a run stopped because a step failed (a plugin crashed,
/// timed out or broke its contract), 130/143 after SIGINT/SIGTERM.
func reporting<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as RunFailure {
        printError("\(error)")
        throw ExitCode(3)
    } catch let error as Cancelled {
        printError("\(error)")
        throw ExitCode(Interrupt.exitStatus ?? 130)
    } catch let error as ConfigError {
        printError("\(error)")
    } catch let error as DataError {
        printError("\(error)")
    } catch let error as TrainerError {
        printError("\(error)")
    } catch let error as PluginError {
        printError("\(error)")
    }
    throw ExitCode(1)
}

func progressReporter() -> ProgressReporter { ProgressReporter(live: isatty(2) != 0) }

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train with GRPO (online, or offline from a rollout file) into a run directory.",
        discussion: """
            Writes RUN/config.yaml (resolved), metrics.jsonl, samples.jsonl, checkpoints/ and report.html, holding \
            RUN/.lock while it runs. A directory that holds a run is refused unless --resume continues it or \
            --overwrite moves it aside. Ctrl-C or SIGTERM stops at the next safe point (within a step) with the last \
            completed step's checkpoint; --resume RUN continues from the newest checkpoint that verifies.
            Exit status: 0 done; 1 bad config, data or plugin; 3 a step failed (the run stopped at its last \
            checkpoint); 130 after SIGINT, 143 after SIGTERM.
            """)

    @OptionGroup var options: ConfigOptions
    @Option(name: .customLong("run"), help: "The run directory (default: runs/<config name>).") var runDirectory: String?
    @Option(help: "Continue the run in this directory from its last checkpoint.") var resume: String?
    @Option(help: "Train offline on the groups of this JSONL file (from prism rollout) instead of generating.")
    var offline: String?
    @Flag(help: "Start again in a run directory that holds a run: the old run is moved to RUN.replaced-<time>, never deleted.")
    var overwrite = false
    @Flag(help: "With --resume: accept --set changes to keys that define the run (seed, model.*, data.*, strategy.*).")
    var force = false

    func validate() throws {
        if overwrite && resume != nil { throw ValidationError("--overwrite and --resume exclude each other") }
        if force && resume == nil { throw ValidationError("--force goes with --resume") }
    }

    func run() throws {
        let box = TrainerBox()
        Interrupt.install(grace: 1) { box.emergencyCheckpoint() }
        try reporting {
            let config = try options.load(resumeFrom: resume)
            let name = options.config.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent } ?? "train"
            let directory = RunDirectory(path: resume ?? runDirectory ?? "runs/\(name)")
            let components = try ComponentLoader.components(config, shouldCancel: { Interrupt.requested })
            let trainer = Trainer(config: config, directory: directory, components: components, progress: progressReporter())
            trainer.shouldStop = { Interrupt.requested }
            box.set(trainer)
            // The signal watcher keeps the box: let go of the trainer when the run ends, so the
            // plugins are destroyed before exit (a torch backend ends its workers and reaps them).
            defer { box.set(nil) }
            if let offline {
                try trainer.runOffline(file: offline, overwrite: overwrite)
                print("offline run written to \(directory.path) (report: \(directory.reportPath))")
                return
            }
            let summary = try trainer.run(Trainer.Start(resume: resume != nil, overwrite: overwrite, force: force))
            if summary.interrupted {
                print(summary.lastStep > 0
                    ? "interrupted after step \(summary.lastStep); continue with: prism train --resume \(directory.path)"
                    : "interrupted before the first step completed; start again with: prism train --resume \(directory.path)")
                throw ExitCode(Interrupt.exitStatus ?? 130)
            }
            if let e = summary.evaluation {
                print(String(format: "held-out accuracy %.3f ± %.3f (process-verified %.3f), step score (RTS) %.3f, pass@%d %.3f",
                             e.accuracy, e.accuracyStandardError, e.processAccuracy, e.meanRTS, e.k, e.passAtK))
            }
            print("run written to \(directory.path) (report: \(directory.reportPath))")
        }
    }
}

/// The trainer of a `prism train`, for the signal watcher's thread.
final class TrainerBox: @unchecked Sendable {
    private let lock = NSLock()
    private var trainer: Trainer?

    func set(_ trainer: Trainer?) { lock.withLock { self.trainer = trainer } }

    func emergencyCheckpoint() -> String? {
        guard let trainer = lock.withLock({ trainer }) else { return "no step had begun; nothing to save" }
        return trainer.emergencyCheckpoint()
    }
}

struct SFTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sft", abstract: "Supervised warm-start on data.train's worked solutions (sft.* keys).")

    @OptionGroup var options: ConfigOptions
    @Option(help: "Where to save the trained model (safetensors).") var out: String

    func run() throws {
        try reporting {
            let config = try options.load()
            try checkWritable(out)
            let components = try ComponentLoader.components(config, loadingWeights: true)
            let file = config.string("data.train")
            guard !file.isEmpty else { throw TrainerError("data.train: no examples (set data.train to a JSONL file)") }
            let train = try JSONL.read(Example.self, from: file)
            guard !train.isEmpty else { throw TrainerError("\(file): no examples (the file is empty) (data.train)") }
            let policy = try Policy(backend: components.backend, sampler: components.sampler, temperature: 1)
            try SupervisedStep.warmStart(train, policy: policy, config: config, steps: max(config.int("sft.steps"), 1),
                                         seed: UInt64(config.int("seed")), log: progressReporter().log)
            try components.backend.save(to: out)
            print("saved \(out)")
        }
    }
}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Held-out accuracy (greedy, with its standard error), judge step score and pass@k.")

    @OptionGroup var options: ConfigOptions
    @Option(help: "Model weights to evaluate (default: model.checkpoint).") var checkpoint: String?
    @Option(help: "Problems to evaluate on (default: data.eval).") var data: String?

    func run() throws {
        try reporting {
            var config = try options.load()
            if let checkpoint { try config.set("model.checkpoint=\(checkpoint)") }
            let components = try ComponentLoader.components(config, loadingWeights: true)
            let file = data ?? config.string("data.eval")
            guard !file.isEmpty else { throw TrainerError("no problems: pass --data or set data.eval") }
            let examples = Array(try JSONL.read(Example.self, from: file).prefix(config.int("data.eval_problems")))
            let greedy = try Policy(backend: components.backend, sampler: components.greedySampler, temperature: 1)
            let sampled = try Policy(backend: components.backend, sampler: components.sampler,
                                     temperature: Float(config.double("grpo.temperature")))
            let k = config.int("eval.k")
            let e = try Evaluation.run(
                examples: examples, greedy: greedy, sampled: k > 0 ? sampled : nil, k: k, reward: components.reward,
                judge: components.judge, maxNewTokens: config.int("eval.max_new_tokens"), seed: UInt64(config.int("seed")))
            print(String(format: "%d problems: accuracy %.3f ± %.3f (process-verified %.3f), step score (RTS) %.3f, pass@%d %.3f",
                         e.problems, e.accuracy, e.accuracyStandardError, e.processAccuracy, e.meanRTS, e.k, e.passAtK))
        }
    }
}

struct RolloutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout", abstract: "Generate groups (prompt, completions, rewards) as JSONL for offline training.")

    @OptionGroup var options: ConfigOptions
    @Option(help: "Model weights (default: model.checkpoint).") var checkpoint: String?
    @Option(help: "Number of prompts (groups).") var prompts = 64
    @Option(help: "Output JSONL.") var out: String

    func run() throws {
        try reporting {
            var config = try options.load()
            if let checkpoint { try config.set("model.checkpoint=\(checkpoint)") }
            let components = try ComponentLoader.components(config, loadingWeights: true)
            let groups = try Rollout.generate(config: config, components: components, prompts: prompts)
            try JSONL.write(groups, to: out)
            print("wrote \(groups.count) groups to \(out)")
        }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Write one HTML report comparing runs side by side.")

    @Argument(help: "Run directories.") var runs: [String]
    @Option(help: "Output file.") var out = "report.html"

    func run() throws {
        try reporting {
            try Report.write(runs: runs.map(RunDirectory.init), to: out)
            print("wrote \(out)")
        }
    }
}

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Generate datasets.", subcommands: [Arithmetic.self, WordProblems.self])

    struct WordProblems: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "word-problems",
            abstract: "Arithmetic word problems as JSONL, solved one calculation per line and ended by 'Answer: N' (for real models).")

        @Option(help: "Number of problems.") var count = 1000
        @Option(help: "Fewest changes of the quantity per story (>= 1).") var minSteps = 1
        @Option(help: "Most changes of the quantity per story.") var maxSteps = 2
        @Option(help: "Most digits per number (1...4).") var maxDigits = 2
        @Option(help: "Operators to draw from, among + - *.") var operators = "+-"
        @Option(help: "Random seed.") var seed = 0
        @Option(help: "Output JSONL file.") var out: String

        func validate() throws {
            guard minSteps >= 1, maxSteps >= minSteps, maxSteps <= 8 else {
                throw ValidationError("--min-steps must be >= 1 and <= --max-steps <= 8")
            }
            guard (1...4).contains(maxDigits) else { throw ValidationError("--max-digits must be in 1...4") }
            try checkOperators(operators)
        }

        func run() throws {
            try checkWritable(out)
            let task = WordProblemTask(terms: (minSteps + 1)...(maxSteps + 1), digits: 1...maxDigits, operators: Array(operators))
            try JSONL.write(task.examples(count: count, seed: UInt64(seed)), to: out)
            print("wrote \(count) problems to \(out)")
        }
    }

    struct Arithmetic: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Multi-step arithmetic chains as JSONL (prompt, answer, steps), e.g. 12+34+7= with 12+34=46;46+7=53;#53.")

        @Option(help: "Number of problems.") var count = 1000
        @Option(help: "Fewest terms per problem (>= 2).") var minTerms = 2
        @Option(help: "Most terms per problem.") var maxTerms = 3
        @Option(help: "Fewest digits per term (>= 1).") var minDigits = 1
        @Option(help: "Most digits per term (<= 9).") var maxDigits = 2
        @Option(help: "Operators to draw from, among + - *.") var operators = "+"
        @Option(help: "Random seed.") var seed = 0
        @Option(help: "Output JSONL file.") var out: String

        func validate() throws {
            guard minTerms >= 2, maxTerms >= minTerms else { throw ValidationError("--min-terms must be >= 2 and <= --max-terms") }
            guard minDigits >= 1, maxDigits >= minDigits, maxDigits <= 9 else {
                throw ValidationError("--min-digits must be >= 1 and <= --max-digits <= 9")
            }
            try checkOperators(operators)
        }

        func run() throws {
            let task = ArithmeticTask(terms: minTerms...maxTerms, digits: minDigits...maxDigits, operators: Array(operators))
            try JSONL.write(task.examples(count: count, seed: UInt64(seed)), to: out)
            print("wrote \(count) problems to \(out)")
        }
    }
}

/// `--operators`: characters among + - *.
private func checkOperators(_ operators: String) throws {
    guard !operators.isEmpty, operators.allSatisfy({ "+-*".contains($0) }) else {
        throw ValidationError("--operators: expected characters among + - *, got '\(operators)'")
    }
}

/// Fails now, naming the path, when `path` cannot be written (its folder is
/// missing or not writable), rather than after the work that would fill it.
func checkWritable(_ path: String) throws {
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw TrainerError("\(path): its folder \(folder) does not exist")
    }
    guard access(folder, W_OK) == 0, !FileManager.default.fileExists(atPath: path) || access(path, W_OK) == 0 else {
        throw TrainerError("\(path): not writable (permission denied)")
    }
}
