// swift-tools-version:6.2
//
// libFuzzer targets for Prism's parsers of untrusted input: the YAML config
// loader, the JSONL reader, the safetensors reader and the checkpoint
// manifest. Built and run by scripts/fuzz (never by the main build):
//
//   swift build --package-path Fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -use-ld=lld
//
// Prism is a path dependency; its identity is the name of the checkout's
// folder, whatever that is.
import Foundation
import PackageDescription

let prism = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent.lowercased()

let package = Package(
    name: "PrismFuzz",
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "CFuzzDriver"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzDriver"]),
        .executableTarget(name: "fuzz-config", dependencies: ["FuzzSupport", .product(name: "PrismTrainer", package: prism)]),
        .executableTarget(name: "fuzz-jsonl", dependencies: ["FuzzSupport", .product(name: "PrismTrainer", package: prism)]),
        .executableTarget(name: "fuzz-manifest", dependencies: ["FuzzSupport", .product(name: "PrismTrainer", package: prism)]),
        .executableTarget(name: "fuzz-safetensors",
                          dependencies: ["FuzzSupport", .product(name: "PrismPluginKit", package: prism)]),
    ]
)
