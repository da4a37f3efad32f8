import ArgumentParser
import Foundation
import PrismBenchmarks
import PrismHost

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run benchmarks (build with -c release for meaningful numbers).",
        subcommands: [ABI.self, Core.self, Transformer.self, GRPO.self, Curves.self, Judge.self]
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
        @Option(help: """
            Timings of fwd+bwd and of generation (the best is reported), and rounds over the GEMM shapes \
            (each shape's best and median round are reported).
            """) var repeats = 5
        @Flag(help: "Print one JSON object (for Benchmarks/compare-pytorch.sh).") var json = false

        func validate() throws {
            guard repeats >= 1, threads >= 1 else { throw ValidationError("--repeats and --threads must be at least 1") }
        }

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

extension BenchCommand {
    struct GRPO: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "grpo",
            abstract: "One GRPO step of the transformer backend, by phase, beside its physical floor.",
            discussion: """
                The step of Benchmarks/compare-trl.sh: prompts x completions through the real plugins (transformer, \
                sampler, exact-answer reward), strategy NSR so every group is trained, mu 1, one minibatch, no KL. \
                The floor is the step's FLOPs (prefill of each distinct prompt, decoding, forward and backward of \
                the update with each distinct prompt once) at the FMA peak measured in the same run; the floor \
                counting every row's prompt is printed beside it. Build with -c release.
                """)

        @Option(help: "Kernel threads.") var threads = 2
        @Option(help: "Measured steps (after one warm-up); the best is reported.") var steps = 10
        @Option(help: "Model width (MLP 4x).") var dModel = 128
        @Option(help: "Layers.") var layers = 2
        @Option(help: "Attention heads.") var heads = 4
        @Option(help: "Prompts per step.") var prompts = 8
        @Option(help: "Completions per prompt (G).") var groupSize = 8
        @Option(help: "Prompt length in tokens (BOS included).") var promptTokens = 16
        @Option(help: "Most new tokens per completion.") var newTokens = 16
        @Flag(help: "Compute every sequence of the update whole (the model's share_prefixes: false).")
        var wholeSequences = false
        @Flag(help: "Print one JSON object (for Benchmarks/compare-trl.sh).") var json = false

        func validate() throws {
            guard dModel % heads == 0 else { throw ValidationError("--d-model must be a multiple of --heads") }
            guard promptTokens >= 2, newTokens >= 1, prompts >= 1, groupSize >= 1, steps >= 1 else {
                throw ValidationError("--prompt-tokens >= 2, --new-tokens, --prompts, --group-size and --steps >= 1")
            }
        }

        func run() throws {
            var shape = GRPOBenchmark.Shape()
            shape.dModel = dModel
            shape.layers = layers
            shape.heads = heads
            shape.prompts = prompts
            shape.groupSize = groupSize
            shape.promptTokens = promptTokens
            shape.newTokens = newTokens
            shape.sharePrefixes = !wholeSequences
            print(try GRPOBenchmark(shape: shape, threads: threads, steps: steps).run(json: json))
        }
    }

    struct Curves: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "curves",
            abstract: "GRPO step time against group size, completion length, width and depth, as log-log SVG charts.",
            discussion: """
                Each sweep varies one dimension of the `prism bench grpo` step, the others at the reference shape, \
                and draws the measured step time and the physical floor with their log-log slopes. Prints a \
                Markdown table of every point (the one in Documentation/Performance.md).
                """)

        @Option(help: "Folder for the SVG files.") var out = "Documentation/figures"
        @Option(help: "Kernel threads.") var threads = 2
        @Option(help: "Measured steps per point.") var steps = 5

        func run() throws {
            let table = try CostCurves(threads: threads, steps: steps).run(directory: out) {
                FileHandle.standardError.write(Data(($0 + "\n").utf8))
            }
            print(table)
        }
    }
}
