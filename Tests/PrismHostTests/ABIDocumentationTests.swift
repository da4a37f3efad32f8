import Foundation
import PrismCore
import PrismHost
import PrismTestSupport
import Testing

/// Every complete plugin printed in Documentation/ABI.md, compiled exactly as
/// printed and run through the conformance suite, as an outside author would.
@Suite("ABI.md examples")
struct ABIDocumentationTests {
    /// The fenced code blocks of `language` in ABI.md that define a plugin.
    static func examples(_ language: String) throws -> [String] {
        let text = try String(contentsOf: TestSupport.packageRoot.appendingPathComponent("Documentation/ABI.md"), encoding: .utf8)
        var blocks: [String] = []
        var current: [String]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```\(language)" {
                current = []
            } else if current != nil, line == "```" {
                blocks.append(current!.joined(separator: "\n") + "\n")
                current = nil
            } else {
                current?.append(String(line))
            }
        }
        return blocks.filter { $0.contains("prism_get_plugin_entry(") && ($0.contains("PRISM_EXPORT") || $0.contains("no_mangle")) }
    }

    /// Runs the conformance suite; a strategy `org.example.NAME` must also
    /// give the built-in strategy NAME's advantages exactly.
    static func check(_ path: String) throws {
        let results = ConformanceSuite(path: path, callCount: 100).run()
        let failed = results.filter { !$0.passed }
        #expect(failed.isEmpty, "\(path): \(failed)")
        let library = try PluginLibrary.load(path)
        let instance = try library.instantiate()
        guard instance.interfaces.contains(PluginInterface.strategy.id) else { return }
        let name = String(library.id.split(separator: ".").last!)
        let builtIn = try #require(StrategyRegistry.builtIn.descriptor(name)).strategy()
        let plugin = try instance.groupStrategy().strategy
        var rng = RandomState(seed: 5)
        for _ in 0..<100 {
            let batch = StrategyPluginTests.randomBatch(&rng)
            #expect(try plugin.advantages(for: batch).advantages == builtIn.advantages(for: batch).advantages)
        }
    }

    @Test func everyCExampleCompilesAndPassesTheCheck() throws {
        let examples = try Self.examples("c")
        #expect(examples.count == 2)  // the reward and the strategy
        let dir = try TestSupport.temporaryDirectory("abi-c")
        for (index, source) in examples.enumerated() {
            let file = dir.appendingPathComponent("example\(index).c").path
            try source.write(toFile: file, atomically: true, encoding: .utf8)
            try Self.check(try TestSupport.compilePlugin([file], name: "example\(index)", in: dir))
        }
    }

    @Test func theRustExampleCompilesAndPassesTheCheck() throws {
        let examples = try Self.examples("rust")
        #expect(examples.count == 1)
        let dir = try TestSupport.temporaryDirectory("abi-rust")
        let file = dir.appendingPathComponent("lib.rs").path
        try examples[0].write(toFile: file, atomically: true, encoding: .utf8)
        let output = dir.appendingPathComponent("libexample_rust.so").path
        // rustup's toolchain (this machine kind has Rust 1.95 in ~/.cargo/bin).
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
        let rustc = ["\(home)/.cargo/bin/rustc", "/usr/local/bin/rustc", "/usr/bin/rustc"]
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        let compiler = try #require(rustc, "rustc not found in ~/.cargo/bin, /usr/local/bin or /usr/bin")
        let result = try TestSupport.run(compiler, ["--edition", "2024", "--crate-type", "cdylib", "-O", file, "-o", output])
        #expect(result.status == 0, "\(result.stderr)")
        try Self.check(output)
    }
}
