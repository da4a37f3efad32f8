import Foundation
import PrismCore
import PrismHost
import PrismTestSupport
import Testing

/// The sampler and backend adapters, through a small C fixture: the RNG is
/// shared bit for bit with the header's xoshiro256**, and every backend call
/// keeps the ABI's shapes and conventions.
@Suite("Sampler and backend adapters")
struct SamplerBackendAdapterTests {
    let instance: PluginInstance
    let directory: URL

    init() throws {
        directory = try TestSupport.temporaryDirectory("unigram")
        let path = try TestSupport.compilePlugin(
            [TestSupport.fixture("fixture_sampler_backend.c")], name: "unigram", in: directory)
        instance = try PluginLibrary.load(path).instantiate()
    }

    @Test func interfaces() {
        #expect(instance.interfaces == ["prism.sampler/1", "prism.backend/1"])
    }

    @Test func samplerConsumesTheHostRNGLikeSwift() throws {
        let sampler = try instance.sampler()
        var pluginState = RandomState(seed: 42)
        var swiftState = RandomState(seed: 42)
        let logits: [Float] = [0, 0, 0, 0, 0, 0, 0, 0]
        for _ in 0..<100 {
            let tokens = try sampler.sample(logits: logits, rows: 2, vocab: 4, rng: &pluginState)
            let expected = [Int(swiftState.next() % 4), Int(swiftState.next() % 4)]
            #expect(tokens == expected)
        }
        #expect(pluginState == swiftState)
    }

    @Test func backendShapesAndConventions() throws {
        let backend = try instance.computeBackend()
        let info = try backend.info()
        #expect(info == BackendInfo(vocabSize: 4, bosToken: 1, eosToken: nil, padToken: 0,
                                    maxSequenceLength: 64, parameterCount: 4))
        #expect(try backend.tokenize("abba") == [2, 3, 3, 2])
        #expect(try backend.detokenize([1, 2, 3, 0]) == "ab")
        let long = String(repeating: "ab", count: 100)
        #expect(try backend.detokenize(backend.tokenize(long)) == long)  // buffer regrowth
        #expect(throws: PluginError.self) { try backend.tokenize("abc") }

        let batch = TokenBatch(sequences: [[1, 2, 3], [1, 2]])
        let logits = try backend.beginDecoding(batch)
        #expect(logits == [0, 0, 1, 0, 0, 0, 1, 0])
        #expect(try backend.decodeStep([2, 2]).count == 8)

        // log p under w = [0,0,1,0]: softmax denominators 3 + e.
        let lp = try backend.logprobs(batch, model: .policy, temperature: 1)
        let z = Float(log(3 + M_E))
        #expect(lp.count == 6)
        #expect(lp[0] == 0 && lp[3] == 0 && lp[5] == 0)  // position 0 and padding
        #expect(abs(lp[1] - (1 - z)) < 1e-6 && abs(lp[2] - (0 - z)) < 1e-6 && abs(lp[4] - (1 - z)) < 1e-6)
    }

    @Test func trainingStepMovesPolicyAwayFromReference() throws {
        let backend = try instance.computeBackend()
        try backend.snapshotReference()
        let batch = TokenBatch(sequences: [[1, 3, 3]])
        let before = try backend.logprobs(batch, model: .policy, temperature: 1)
        // Loss = -sum logp: gradient -1 per token raises p('b').
        try backend.backward(batch, temperature: 1, gradLogprobs: [0, -1, -1])
        let norm = try backend.optimizerStep(OptimizerStep(learningRate: 0.5))
        #expect(norm > 0)
        let after = try backend.logprobs(batch, model: .policy, temperature: 1)
        let reference = try backend.logprobs(batch, model: .reference, temperature: 1)
        #expect(after[1] > before[1])
        #expect(reference == before)

        let file = directory.appendingPathComponent("w.bin").path
        try backend.save(to: file)
        try backend.backward(batch, temperature: 1, gradLogprobs: [0, 1, 1])
        _ = try backend.optimizerStep(OptimizerStep(learningRate: 0.5))
        try backend.load(from: file)
        #expect(try backend.logprobs(batch, model: .policy, temperature: 1) == after)
        #expect(throws: PluginError.self) { try backend.load(from: "/nonexistent/w.bin") }
    }

    @Test func conformanceSuitePassesOnTheFixture() throws {
        let results = ConformanceSuite(path: instance.library.path, callCount: 200).run()
        #expect(results.count > 10)
        #expect(results.filter { !$0.passed }.map(\.name) == ["malformed config is refused"])
    }
}
