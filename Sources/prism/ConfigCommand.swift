import ArgumentParser
import PrismCore
import PrismTrainer

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Show a resolved config or document every key.",
        subcommands: [Show.self, Keys.self, Metrics.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the resolved config (defaults, file, --set).")
        @OptionGroup var options: ConfigOptions
        func run() throws {
            try reporting { print(try options.load().yaml, terminator: "") }
        }
    }

    struct Keys: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every config key and every built-in strategy, as Markdown (Documentation/Config.md).")
        func run() {
            print(ConfigKey.markdown, terminator: "")
        }
    }

    struct Metrics: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every metric of metrics.jsonl, as Markdown (Documentation/Training.md).")
        func run() {
            print(Metric.markdown, terminator: "")
        }
    }
}
