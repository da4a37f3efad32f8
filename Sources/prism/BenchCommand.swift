import ArgumentParser
import PrismBenchmarks

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run benchmarks (build with -c release for meaningful numbers).",
        subcommands: [ABI.self, Core.self, Transformer.self]
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

extension BenchCommand {
    struct Core: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "core",
            abstract: "Advantages + grad_logprob throughput of PrismCore on one core.")

        @Option(help: "Groups in the batch.") var groups = 64
        @Option(help: "Responses per group (G).") var groupSize = 16
        @Option(help: "Completion tokens per response.") var tokens = 256

        func run() {
            print(CoreBenchmark(groups: groups, groupSize: groupSize, tokens: tokens).run())
        }
    }
}

extension BenchCommand {
    struct Transformer: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "transformer",
            abstract: "Transformer backend on the reference shape: fwd+bwd, generation, GEMM vs FMA peak.")

        @Option(help: "Kernel threads.") var threads = 2
        @Option(help: "Repetitions; the best is reported.") var repeats = 5
        @Flag(help: "Print one JSON object (for Benchmarks/compare-pytorch.sh).") var json = false

        func run() throws {
            print(try TransformerBenchmark(threads: threads, repeats: repeats).run(json: json))
        }
    }
}
