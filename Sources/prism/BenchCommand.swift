import ArgumentParser
import Foundation
import PrismBenchmarks
import PrismHost

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run benchmarks (build with -c release for meaningful numbers).",
        subcommands: [ABI.self, Core.self, Transformer.self, Judge.self]
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

extension BenchCommand {
    struct Judge: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "judge",
            abstract: "Agreement of a step judge (e.g. the LLM judge) with the exact arithmetic judge on generated wrong answers.",
            discussion: """
                Generates word-problem solutions with one wrong calculation (the later lines carried on from it), \
                checks with the exact step judge that its first error is that line, asks the judge under test, and \
                reports how often it names the same line, says -1 (no error), is one line off or gives no verdict, \
                with its latency and token use. Benchmarks/llm-judge-agreement.sh runs it against SmolLM2-135M \
                served by llama.cpp.
                """)

        @Option(help: "The judge plugin: a product name or a path.") var plugin = "PrismLLMJudge"
        @Option(help: "The judge's JSON config (for the LLM judge: base_url, model, ...).") var config: String
        @Option(help: "Wrong answers to judge.") var count = 300
        @Option(help: "Random seed of the generated answers.") var seed = 0
        @Option(help: "Write one JSON line per answer (its first error and the verdict) to this file.") var out: String?

        func run() throws {
            let path = plugin.contains("/") || plugin.hasSuffix(".so")
                ? plugin : try PluginDiscovery.find(product: plugin) ?? plugin
            let report = try JudgeBenchmark(judgePath: path, judgeConfig: config, count: count, seed: UInt64(seed), out: out)
                .run(log: { FileHandle.standardError.write(Data(($0 + "\n").utf8)) })
            print(report)
        }
    }
}
