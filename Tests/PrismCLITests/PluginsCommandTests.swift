import Foundation
import PrismTestSupport
import Testing

/// Runs the built `prism` executable against the shipped plugins, end to end.
@Suite("prism plugins")
struct PluginsCommandTests {
    let prism = TestSupport.productsDirectory.appendingPathComponent("prism").path

    @Test func inspectPrintsIdAndInterfacesOfTheCPlugin() throws {
        let result = try TestSupport.run(prism, ["plugins", "inspect", TestSupport.plugin("PrismExactAnswer")])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("id:          org.prism.exact-answer\n"))
        #expect(result.stdout.contains("abi:         1.6\n"))
        #expect(result.stdout.contains("interfaces:  prism.reward/1\n"))
    }

    @Test func listFindsTheShippedPlugins() throws {
        let result = try TestSupport.run(prism, ["plugins", "list", TestSupport.productsDirectory.path])
        #expect(result.status == 0)
        #expect(result.stdout.contains("org.prism.exact-answer\t1.0.0\tABI 1.6\t"))
        #expect(result.stdout.contains("org.prism.step-judge\t1.0.0\tABI 1.6\t"))
    }

    @Test func checkPassesOnEveryShippedPlugin() throws {
        let result = try TestSupport.run(prism, ["plugins", "check", "--calls", "300"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("libPrismExactAnswer.so\n"))
        #expect(result.stdout.contains("libPrismStepJudge.so\n"))
        #expect(result.stdout.contains("libPrismStylized.so\n"))
        #expect(result.stdout.contains("PASS  interfaces  prism.reward/1, prism.feedback/1, prism.backend/1"))
        #expect(result.stdout.contains("PASS  reward: empty batch"))
        #expect(result.stdout.contains("PASS  feedback: NaN rewards"))
        #expect(!result.stdout.contains("FAIL"))
        #expect(result.stdout.hasSuffix(" passed, 0 failed\n"))
    }

    @Test func checkFailsOnABrokenPlugin() throws {
        let directory = try TestSupport.temporaryDirectory("cli-broken")
        let broken = try TestSupport.compilePlugin(
            [TestSupport.fixture("broken_plugin.c")], name: "bad_output", defines: ["BAD_OUTPUT"], in: directory)
        let result = try TestSupport.run(prism, ["plugins", "check", "--calls", "10", broken])
        #expect(result.status == 1)
        #expect(result.stdout.contains(
            "FAIL  reward: deterministic  org.prism.test.fixture: score returned reward inf for sample 0; expected a finite number or NaN"))
    }

    @Test func checkFailsOnAMissingFile() throws {
        let result = try TestSupport.run(prism, ["plugins", "check", "/nonexistent/libX.so"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("FAIL  load  /nonexistent/libX.so: no such file"))
    }

    @Test func inspectReportsALoadErrorInOneLine() throws {
        let result = try TestSupport.run(prism, ["plugins", "inspect", "/nonexistent/libX.so"])
        #expect(result.status == 1)
        #expect(result.stderr == "error: /nonexistent/libX.so: no such file\n")
    }

    @Test func abiBenchmarkRunsAndReportsBothBatchSizes() throws {
        let result = try TestSupport.run(prism, ["bench", "abi", "--samples", "2000"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("batch   1: direct"))
        #expect(result.stdout.contains("batch  64: direct"))
    }

    @Test func coreBenchmarkRuns() throws {
        let result = try TestSupport.run(prism, ["bench", "core", "--groups", "4", "--group-size", "4", "--tokens", "8"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("M tokens/s"))
    }

    /// Zero rounds would leave a GEMM shape with no timing to take a best
    /// and a median of: refused before any work, with the flag named.
    @Test func transformerBenchmarkRefusesZeroRepeats() throws {
        let result = try TestSupport.run(prism, ["bench", "transformer", "--repeats", "0"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--repeats and --threads must be at least 1"), "\(result.stderr)")
    }
}
