import Foundation
import PrismCore
import PrismHost
import PrismTestSupport
import Testing

/// The sampler plugin's empirical frequencies against the renormalised
/// target distribution of each truncation rule (chi-square at a fixed seed).
@Suite("Sampler plugin")
struct SamplerPluginTests {
    static let logits: [Float] = [2.0, 1.0, 0.5, 0, -0.5, -1, -.infinity, 1.5]

    /// The target distribution, computed here independently of the plugin.
    static func target(temperature: Double = 1, topK: Int = 0, topP: Double = 1, minP: Double = 0) -> [Double] {
        var p = logits.map { $0 == -.infinity ? 0 : Foundation.exp(Double($0) / temperature) }
        let order = p.indices.sorted { p[$0] > p[$1] }
        if topK > 0 { for i in order.dropFirst(topK) { p[i] = 0 } }
        if topP < 1 {
            let total = p.reduce(0, +)
            var mass = 0.0
            for i in order where p[i] > 0 {
                if mass >= topP * total { p[i] = 0 } else { mass += p[i] }
            }
        }
        if minP > 0 { let top = p.max()!; for i in p.indices where p[i] < minP * top { p[i] = 0 } }
        let total = p.reduce(0, +)
        return p.map { $0 / total }
    }

    /// Chi-square critical values at p = 0.001 for 1...7 degrees of freedom.
    static let critical = [10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32]

    static let cases: [(String, [Double])] = [
        ("{}", target()),
        (#"{"temperature": 0.7}"#, target(temperature: 0.7)),
        (#"{"top_k": 3}"#, target(topK: 3)),
        (#"{"top_p": 0.8}"#, target(topP: 0.8)),
        (#"{"min_p": 0.2}"#, target(minP: 0.2)),
        (#"{"temperature": 0.8, "top_k": 5, "top_p": 0.9, "min_p": 0.05}"#,
         target(temperature: 0.8, topK: 5, topP: 0.9, minP: 0.05)),
    ]

    @Test(arguments: cases.indices)
    func frequenciesMatchTheTarget(_ index: Int) throws {
        let (config, expected) = Self.cases[index]
        let sampler = try PluginLibrary.load(TestSupport.plugin("PrismSampler")).instantiate(config: config).sampler()
        var rng = RandomState(seed: 2026)
        let rows = 500, vocab = Self.logits.count
        let batch = Array(Array(repeating: Self.logits, count: rows).joined())
        var counts = [Int](repeating: 0, count: vocab)
        for _ in 0..<80 {
            for token in try sampler.sample(logits: batch, rows: rows, vocab: vocab, rng: &rng) { counts[token] += 1 }
        }
        let draws = Double(rows * 80)
        var chi2 = 0.0
        var support = 0
        for (count, p) in zip(counts, expected) {
            if p == 0 {
                #expect(count == 0, "\(config): drew an excluded token")
                continue
            }
            support += 1
            chi2 += (Double(count) - draws * p) * (Double(count) - draws * p) / (draws * p)
        }
        print("\(config): chi-square \(chi2) over \(support) tokens")
        #expect(support >= 2)
        #expect(chi2 < Self.critical[support - 2], "\(config): counts \(counts), expected \(expected.map { $0 * draws })")
    }

    @Test func greedyTakesTheArgmaxAndConsumesNoRandomness() throws {
        for config in [#"{"greedy": true}"#, #"{"temperature": 0}"#] {
            let sampler = try PluginLibrary.load(TestSupport.plugin("PrismSampler")).instantiate(config: config).sampler()
            var rng = RandomState(seed: 1)
            let before = rng
            #expect(try sampler.sample(logits: Self.logits + Self.logits, rows: 2, vocab: 8, rng: &rng) == [0, 0])
            #expect(rng == before)
        }
    }

    @Test func badConfigIsRefused() throws {
        let library = try PluginLibrary.load(TestSupport.plugin("PrismSampler"))
        #expect { _ = try library.instantiate(config: #"{"top_p": 1.5}"#) } throws: { error in
            (error as? PluginError)?.reason.contains("config key 'top_p': expected a number in 0.0...1.0") == true
        }
        #expect { _ = try library.instantiate(config: #"{"topk": 3}"#) } throws: { error in
            (error as? PluginError)?.reason.contains("unknown key 'topk'") == true
        }
    }
}
