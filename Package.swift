// swift-tools-version:6.2
//
// The module graph is the architecture (see README "Repository organization"):
//
//   CPrism (SDK/, the C ABI, header-only)
//      ^                    ^
//   PrismHost ──> PrismCore <── PrismTrainer
//      ^    ^                       ^
//      │   PrismIsolation           │   (plugins in a runner process,
//      │    ^                       │    served by prism-plugin-runner)
//      └──── PrismRuntime ──────────┘   (plugins a config names -> Components)
//                 ^
//   prism (CLI, wiring only) ──> PrismSignals (Ctrl-C for command-line tools)
//
// Plugins/<Name>/ are dynamic libraries that see only CPrism. No Prism module
// links against a plugin: plugins are loaded with dlopen at run time. The one
// exception is PrismBenchmarks (see there), which links two plugins' internal
// C targets to measure them without the ABI in between. Fuzz/ is a package of
// its own (libFuzzer targets) that depends on this one by path.
import PackageDescription

/// Warnings are errors when PRISM_WERROR or CI is set (CI sets CI=true).
let warningsAreErrors = Context.environment["PRISM_WERROR"] != nil
    || Context.environment["CI"] != nil

let strictSwift: [SwiftSetting] = [.strictMemorySafety()]
    + (warningsAreErrors ? [.treatAllWarnings(as: .error)] : [])
let plainSwift: [SwiftSetting] = warningsAreErrors ? [.treatAllWarnings(as: .error)] : []
let pluginC: [CSetting] = [
    .unsafeFlags(["-fvisibility=hidden", "-Wall", "-Wextra", "-pedantic"]
        + (warningsAreErrors ? ["-Werror"] : [])),
]

let package = Package(
    name: "Prism",
    products: [
        .executable(name: "prism", targets: ["prism"]),
        // Libraries for Swift programs built on Prism (Examples/, the fuzz
        // targets in Fuzz/): the math, the plugin host, the training loop, and
        // the runtime that builds a run's plugins from a config.
        .library(name: "PrismCore", targets: ["PrismCore"]),
        .library(name: "PrismHost", targets: ["PrismHost"]),
        .library(name: "PrismTrainer", targets: ["PrismTrainer"]),
        .library(name: "PrismRuntime", targets: ["PrismRuntime"]),
        // The C embedding API (SDK/include/prism/embed.h) for programs in any language.
        .library(name: "PrismEmbed", type: .dynamic, targets: ["PrismEmbed"]),
        // Helpers for plugins written in Swift: configs, text, errors, safetensors.
        .library(name: "PrismPluginKit", targets: ["PluginKit"]),
        // Runs one plugin in its own process for `isolation: process`.
        .executable(name: "prism-plugin-runner", targets: ["prism-plugin-runner"]),
        // Shipped plugins: each a shared library loaded with dlopen.
        .library(name: "PrismExactAnswer", type: .dynamic, targets: ["ExactAnswer"]),
        .library(name: "PrismStepJudge", type: .dynamic, targets: ["StepJudge"]),
        .library(name: "PrismTransformer", type: .dynamic, targets: ["Transformer"]),
        .library(name: "PrismSampler", type: .dynamic, targets: ["Sampler"]),
        .library(name: "PrismStylized", type: .dynamic, targets: ["Stylized"]),
        .library(name: "PrismTorch", type: .dynamic, targets: ["Torch"]),
        .library(name: "PrismLLMJudge", type: .dynamic, targets: ["LLMJudge"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // The stable C ABI. Header-only: every plugin copies it statically.
        .target(
            name: "CPrism",
            path: "SDK",
            exclude: ["abi_checks.c", "examples"],
            publicHeadersPath: "include"
        ),

        // Pure Swift: GRPO math, strategies, metrics, the plugin protocols.
        .target(name: "PrismCore", swiftSettings: strictSwift),

        // libffi, found with pkg-config, for function plugins (bare C
        // functions as rewards and judges).
        .systemLibrary(name: "CLibFFI", path: "Sources/CLibFFI", pkgConfig: "libffi", providers: [.apt(["libffi-dev"])]),

        // The only module that touches dlopen and the C ABI.
        .target(
            name: "PrismHost",
            dependencies: ["PrismCore", "CPrism", "CLibFFI"],
            swiftSettings: strictSwift
        ),

        // SHA-256 in pure Swift: checkpoint manifests, the LLM judge's cache keys.
        .target(name: "PrismDigest", swiftSettings: strictSwift),

        // The training loop; talks to plugins only through PrismCore protocols.
        .target(name: "PrismTrainer", dependencies: ["PrismCore", "PrismDigest", "Yams"], swiftSettings: strictSwift),

        // The host wired to the trainer: builds a run's Components from a
        // config (which plugins, where found, how configured). Shared by the
        // CLI, the tests and embedding programs.
        .target(
            name: "PrismRuntime",
            dependencies: ["PrismCore", "PrismHost", "PrismTrainer", "PrismIsolation"],
            swiftSettings: strictSwift
        ),

        // The C embedding API over PrismRuntime: each function of
        // SDK/include/prism/embed.h (module CPrismEmbed of the SDK's module
        // map) implemented with @c @implementation, so the compiler checks
        // the signatures against the header.
        .target(
            name: "PrismEmbed",
            dependencies: ["PrismCore", "PrismHost", "PrismTrainer", "PrismRuntime", "CPrism", "CPrismEmbedQuiet"],
            swiftSettings: plainSwift
        ),

        // Undoes the Swift runtime's crash handlers when libPrismEmbed.so
        // brings the runtime into a program (the program's signals stay its own).
        .target(
            name: "CPrismEmbedQuiet",
            cSettings: [.unsafeFlags(["-fvisibility=hidden", "-Wall", "-Wextra"] + (warningsAreErrors ? ["-Werror"] : []))],
            linkerSettings: [.linkedLibrary("dl")]
        ),

        // Out-of-process plugins: the process plumbing in C (spawn, frames
        // with deadlines, shared memory), the host's proxies and the
        // runner's loop in Swift, and the runner executable.
        .target(
            name: "CPrismIsolation",
            // Hidden: linked statically into prism, the runner, the torch plugin and
            // libPrismEmbed.so, whose exports must be embed.h's functions only.
            cSettings: [.unsafeFlags(["-fvisibility=hidden", "-Wall", "-Wextra"] + (warningsAreErrors ? ["-Werror"] : []))]
        ),
        .target(
            name: "PrismIsolation",
            dependencies: ["PrismCore", "PrismHost", "CPrismIsolation"],
            swiftSettings: plainSwift
        ),
        .executableTarget(
            name: "prism-plugin-runner",
            dependencies: ["PrismIsolation", "PrismHost"],
            swiftSettings: plainSwift
        ),

        // SIGINT/SIGTERM for command-line tools: a C handler that sets a flag,
        // and its Swift face. Never linked by library code.
        .target(
            name: "CPrismSignals",
            cSettings: [.unsafeFlags(["-Wall", "-Wextra"] + (warningsAreErrors ? ["-Werror"] : []))]
        ),
        .target(name: "PrismSignals", dependencies: ["CPrismSignals"], swiftSettings: strictSwift),

        // Benchmarks run by `prism bench`. They link plugin internals on
        // purpose: `bench abi` compares a plugin call with a direct call of
        // the very same exact-answer logic (CExactAnswerLogic), and `bench
        // transformer` times the GEMM kernels against the measured FMA peak
        // (CPrismKernels), which the backend ABI cannot reach. Nothing else
        // in Prism links them.
        .target(
            name: "PrismBenchmarks",
            dependencies: ["PrismCore", "PrismHost", "PrismTrainer", "PrismIsolation", "CExactAnswerLogic", "CPrismKernels"],
            path: "Benchmarks/PrismBenchmarks",
            swiftSettings: plainSwift
        ),

        // The command-line tool: wiring only.
        .executableTarget(
            name: "prism",
            dependencies: [
                "PrismCore", "PrismHost", "PrismTrainer", "PrismRuntime", "PrismSignals", "PrismBenchmarks", "PrismIsolation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: plainSwift
        ),

        // In-memory fakes of the plugin protocols and test helpers.
        .target(name: "PrismTestSupport", dependencies: ["PrismCore"], swiftSettings: plainSwift),

        // Shipped plugins.
        .target(
            name: "ExactAnswer",
            dependencies: ["CPrism"],
            path: "Plugins/ExactAnswer",
            exclude: ["plugin.json", "logic"],
            sources: ["exact_answer.c"],
            publicHeadersPath: ".",
            cSettings: pluginC
        ),
        // The exact-answer matching rules as a header, so the ABI benchmark
        // can call the very same logic directly.
        .target(name: "CExactAnswerLogic", path: "Plugins/ExactAnswer/logic"),
        // Helpers for Swift plugins (strings, errors, configs); linked into each.
        .target(name: "PluginKit", dependencies: ["CPrism"], path: "Plugins/PluginKit", swiftSettings: plainSwift),
        .target(
            name: "StepJudge",
            dependencies: ["CPrism", "PluginKit"],
            path: "Plugins/StepJudge",
            exclude: ["plugin.json"],
            swiftSettings: plainSwift
        ),
        // The transformer's compute core in C: runtime-dispatched AVX2+FMA or
        // portable kernels, always optimised (debug builds included).
        .target(
            name: "CPrismKernels",
            path: "Plugins/Transformer/Kernels",
            cSettings: [.unsafeFlags(["-O2", "-fvisibility=hidden", "-Wall", "-Wextra"]
                + (warningsAreErrors ? ["-Werror"] : [])), .define("_GNU_SOURCE")],
            linkerSettings: [.linkedLibrary("m"), .linkedLibrary("pthread")]
        ),
        .target(
            name: "Transformer",
            dependencies: ["CPrism", "CPrismKernels", "PluginKit"],
            path: "Plugins/Transformer/Plugin",
            swiftSettings: plainSwift
        ),
        .target(
            name: "Sampler",
            dependencies: ["CPrism", "PluginKit"],
            path: "Plugins/Sampler",
            exclude: ["plugin.json"],
            swiftSettings: plainSwift
        ),
        // Hugging Face causal LMs in a PyTorch worker process (worker/ is its
        // Python side, copied beside the plugin).
        .target(
            name: "Torch",
            dependencies: ["CPrism", "CPrismIsolation", "PluginKit"],
            path: "Plugins/Torch",
            exclude: ["plugin.json"],
            sources: ["Plugin"],
            resources: [.copy("worker/prism_torch_worker.py")],
            swiftSettings: plainSwift
        ),
        // A step judge asking a model behind an OpenAI-compatible HTTP endpoint
        // (URLSession: FoundationNetworking, libcurl underneath).
        .target(
            name: "LLMJudge",
            dependencies: ["CPrism", "PluginKit", "PrismDigest"],
            path: "Plugins/LLMJudge",
            exclude: ["plugin.json"],
            swiftSettings: plainSwift
        ),
        // The stylized n-step model of the study: backend, reward and judge.
        .target(
            name: "Stylized",
            dependencies: ["CPrism", "PluginKit"],
            path: "Plugins/Stylized",
            exclude: ["plugin.json"],
            swiftSettings: plainSwift
        ),

        .testTarget(
            name: "PrismCoreTests",
            dependencies: ["PrismCore", "PrismTestSupport"],
            swiftSettings: plainSwift
        ),
        .testTarget(
            name: "PrismHostTests",
            dependencies: ["PrismHost", "PrismCore", "PrismTestSupport"],
            swiftSettings: plainSwift
        ),
        .testTarget(
            name: "PrismTransformerTests",
            dependencies: ["CPrismKernels", "PrismHost", "PrismCore", "PrismTestSupport"],
            swiftSettings: plainSwift
        ),
        .testTarget(
            name: "PrismTrainerTests",
            dependencies: ["PrismTrainer", "PrismRuntime", "PrismHost", "PrismCore", "PrismDigest", "PrismTestSupport"],
            swiftSettings: plainSwift
        ),
        .testTarget(
            name: "PrismCLITests",
            dependencies: ["PrismTestSupport"],
            swiftSettings: plainSwift
        ),
    ]
)
