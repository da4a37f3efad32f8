import ArgumentParser
import PrismBenchmarks

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run benchmarks (build with -c release for meaningful numbers).",
        subcommands: [ABI.self]
    )
}

extension BenchCommand {
    struct ABI: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "abi",
            abstract: "Cost of one reward call through the C ABI against the same logic called directly.")

        @Option(help: "Path to the exact-answer plugin (default: the shipped one).")
        var plugin: String?

        @Option(help: "Samples scored per configuration.")
        var samples = 2_000_000

        func run() throws {
            let report = try ABIBenchmark(pluginPath: plugin, samplesPerRun: samples).run()
            print(report)
        }
    }
}
