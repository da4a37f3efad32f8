import Foundation
import PrismTestSupport
import Testing

/// `prism simulate` as a user runs it.
@Suite("prism simulate")
struct SimulateCommandTests {
    let prism = TestSupport.productsDirectory.appendingPathComponent("prism").path

    @Test func writesTablesCurvesAndCharts() throws {
        let out = try TestSupport.temporaryDirectory("cli-simulate").path
        let result = try TestSupport.run(prism, [
            "simulate", "--strategies", "grpo,sgpo", "--noise", "0,0.5", "--seeds", "2", "--steps", "5",
            "--groups", "8", "--reasoning-steps", "3", "--initial=-1", "--lr", "0.5,1", "--theory", "--out", out,
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("exact expected update per group at theta = [-1.0, -1.0, -1.0], G = 8"))
        #expect(result.stdout.contains("| strategy | steps to P>0.5 | budget to P>0.5 (k tokens) |"))
        for label in ["grpo lr=0.5", "grpo lr=1", "sgpo eps=0 lr=0.5", "sgpo eps=0.5 lr=1"] {
            #expect(result.stdout.contains("| \(label) |"), "\(label)")
        }
        #expect(result.stdout.contains("Best learning rate per strategy"))
        // 2 grpo + 4 sgpo variants, 2 seeds, 6 lines each (steps 0...5) + header.
        let curves = try String(contentsOfFile: out + "/curves.csv", encoding: .utf8).split(separator: "\n")
        #expect(curves.count == 1 + 6 * 2 * 6)
        #expect(curves.dropFirst().allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false).count == 7 })
        for file in ["time_to_threshold.csv", "summary.md", "p_correct.svg", "all_negative.svg"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file)")
        }
    }

    @Test func badOptionsNameWhatIsExpected() throws {
        let strategy = try TestSupport.run(prism, ["simulate", "--strategies", "grpo,spgo"])
        #expect(strategy.status == 1)
        #expect(strategy.stderr.hasPrefix("error: unknown strategy 'spgo'; expected all or a comma-separated list of: grpo, sgpo,"))
        let initial = try TestSupport.run(prism, ["simulate", "--reasoning-steps", "3", "--initial=1,2"])
        #expect(initial.stderr == "error: --initial: expected one number or 3 (one per reasoning step), got 2\n")
        let noise = try TestSupport.run(prism, ["simulate", "--noise", "0.2,x"])
        #expect(noise.stderr == "error: --noise: expected comma-separated numbers in 0.0...1.0, got '0.2,x'\n")
    }
}
