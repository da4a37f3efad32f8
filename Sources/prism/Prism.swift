import ArgumentParser
import PrismTrainer

@main
struct Prism: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prism",
        abstract: "A GRPO runtime whose rewards, judges, samplers and backends are dlopen'd plugins.",
        discussion: """
            Plugins are shared libraries speaking the Prism C ABI (SDK/include/prism/prism.h). \
            Shipped plugins are found next to this executable, then in PRISM_PLUGIN_PATH.
            """,
        version: PrismVersion.string,
        subcommands: [
            DemoCommand.self, TrainCommand.self, SFTCommand.self, EvalCommand.self, RolloutCommand.self,
            ReportCommand.self, SimulateCommand.self, StudyCommand.self, DataCommand.self, ConfigCommand.self, PluginsCommand.self, BenchCommand.self,
        ]
    )
}
