import Foundation
import PrismCore
import PrismHost
import PrismTestSupport
import Testing

/// `prism.strategy/1` through a real plugin: SDK/examples/grpo_strategy.c,
/// built by cc from SDK/include alone.
@Suite("Strategy plugins")
struct StrategyPluginTests {
    static func example(config: String = "{}") throws -> any GroupStrategy {
        let dir = try TestSupport.temporaryDirectory("strategy-plugin")
        let path = try TestSupport.compilePlugin(
            [TestSupport.packageRoot.appendingPathComponent("SDK/examples/grpo_strategy.c").path],
            name: "grpo_strategy", in: dir)
        return try PluginLibrary.load(path).instantiate(config: config).groupStrategy().strategy
    }

    /// Random batches: group sizes 0-9, rewards on a grid with NaNs,
    /// identical-reward groups, random lengths.
    static func randomBatch(_ rng: inout RandomState) -> [StrategyGroup] {
        (0..<Int(rng.uniform() * 6)).map { _ in
            let size = Int(rng.uniform() * 10)
            let uniform = rng.uniform() < 0.3
            let value = (rng.uniform() * 4).rounded() / 4
            let rewards = (0..<size).map { _ in
                rng.uniform() < 0.1 ? Double.nan : uniform ? value : (rng.uniform() * 8).rounded() / 8
            }
            return StrategyGroup(rewards: GroupRewards(rewards: rewards, correct: rewards.map { $0 == 1 }),
                                 tokenCounts: (0..<size).map { _ in Int(rng.uniform() * 12) })
        }
    }

    @Test func theCExampleReproducesTheBuiltInGRPOExactly() throws {
        let plugin = try Self.example()
        let builtIn = try StrategyRegistry.builtIn.descriptor("grpo")!.strategy()
        var rng = RandomState(seed: 11)
        var compared = 0
        for _ in 0..<300 {
            let batch = Self.randomBatch(&rng)
            let expected = try builtIn.advantages(for: batch)
            let got = try plugin.advantages(for: batch)
            #expect(got.advantages == expected.advantages)  // bit for bit
            #expect(got.tokenAdvantages == nil)
            #expect(got.kinds == expected.kinds)
            compared += batch.map(\.rewards.count).reduce(0, +)
        }
        #expect(compared > 1000)
    }

    @Test func perTokenAdvantagesComeBackPerCompletion() throws {
        let plugin = try Self.example(config: #"{"credit_tokens": 2}"#)
        let group = StrategyGroup(rewards: GroupRewards(rewards: [1, 0, 0], correct: [true, false, false]),
                                  tokenCounts: [3, 1, 0])
        let scored = try plugin.advantages(for: [group])
        let a = scored.advantages[0]
        #expect(scored.tokenAdvantages == [[[a[0], a[0], 0], [a[1]], []]])
        #expect(scored.advantage(group: 0, response: 0, token: 2) == 0)
    }

    @Test func theExamplePassesTheConformanceSuite() throws {
        let dir = try TestSupport.temporaryDirectory("strategy-check")
        let path = try TestSupport.compilePlugin(
            [TestSupport.packageRoot.appendingPathComponent("SDK/examples/grpo_strategy.c").path],
            name: "grpo_strategy", in: dir)
        let results = ConformanceSuite(path: path, callCount: 50).run()
        let failed = results.filter { !$0.passed }
        #expect(failed.isEmpty, "\(failed)")
        #expect(results.contains { $0.name == "strategy: deterministic" })
    }
}
