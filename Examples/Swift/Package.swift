// swift-tools-version:6.2
//
// A Swift program that trains with Prism's library products (PrismCore,
// PrismHost, PrismTrainer, PrismRuntime), depending on this repository by
// path. Build and run from the repository root:
//
//   swift build                                  # the plugins, next to prism
//   swift build --package-path Examples/Swift
//   PRISM_PLUGIN_PATH=$PWD/.build/debug Examples/Swift/.build/debug/prism-swift-example RUN_DIR
import PackageDescription

let package = Package(
    name: "PrismSwiftExample",
    dependencies: [
        .package(name: "Prism", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "prism-swift-example",
            dependencies: [
                .product(name: "PrismCore", package: "Prism"),
                .product(name: "PrismHost", package: "Prism"),
                .product(name: "PrismTrainer", package: "Prism"),
                .product(name: "PrismRuntime", package: "Prism"),
            ]
        ),
    ]
)
