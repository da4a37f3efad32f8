// Trains a tiny transformer for a few GRPO steps from Swift, one step at a
// time, printing each step's reward; then scores two answers with the
// config's reward plugin and lists the plugins found.
//
//   prism-swift-example RUN_DIR [key=value ...]
import Foundation
import PrismCore
import PrismHost
import PrismRuntime
import PrismTrainer

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: prism-swift-example RUN_DIR [key=value ...]\n".utf8))
    exit(2)
}
let directory = arguments[1]

do {
    // The problems: generated in code (ArithmeticTask is what `prism data arithmetic` uses).
    let task = ArithmeticTask(terms: 2...2, digits: 1...1)
    var rng = RandomState(seed: 7)
    let problems = (0..<40).map { _ in task.example(&rng) }
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try JSONL.write(problems, to: directory + "/problems.jsonl")

    // A config as text, with --set style overrides from the command line.
    var config = try ConfigFile(yaml: """
        model:
          config: {vocab: "0123456789+=;#", d_model: 16, layers: 1, heads: 2, d_ff: 32, max_len: 32}
        data: {train: \(directory)/problems.jsonl, eval: \(directory)/problems.jsonl, eval_problems: 4}
        grpo: {group_size: 4, prompts_per_step: 2, max_new_tokens: 8}
        eval: {k: 0, max_new_tokens: 8}
        run: {steps: 3, eval_every: 0}
        strategy: {name: sgpo}
        """, source: "example")
    for assignment in arguments.dropFirst(2) { try config.set(assignment) }

    // The plugins the config names, loaded with dlopen; the run, one step at a time.
    let components = try ComponentLoader.components(config)
    let trainer = Trainer(config: config, directory: RunDirectory(path: directory + "/run"), components: components,
                          progress: .silent)
    let session = try TrainingSession(trainer: trainer, start: Trainer.Start(overwrite: true))
    while case .completed(let step, let metrics, _) = try session.step() {
        let line = try JSONSerialization.jsonObject(with: Data(metrics.utf8)) as? [String: Any] ?? [:]
        print("step \(step): reward \(line["reward"] ?? "?"), all-negative groups \(line["groups/all_negative"] ?? "?")")
    }
    let summary = try session.finish(interrupted: false)
    print("trained steps \(summary.firstStep)...\(summary.lastStep); held-out accuracy \(summary.evaluation?.accuracy ?? .nan)")

    // A reward plugin used directly, through the host's checks.
    let scores = try components.reward.score([
        RewardSample(prompt: "3+4=", completion: "3+4=7;#7", reference: "7"),
        RewardSample(prompt: "3+4=", completion: "3+4=8;#8", reference: "7"),
    ])
    print("rewards \(scores.map(\.reward)), correct \(scores.map(\.correct))")
    for directory in PluginDiscovery.searchDirectories() {
        for path in PluginDiscovery.libraries(in: directory) {
            if let library = try? PluginLibrary.load(path) { print("plugin \(library.id) \(library.version)") }
        }
    }
} catch {
    // The errors of Prism's modules are one line each, ready to show.
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
