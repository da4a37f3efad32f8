import PrismCore

/// Conformance checks for `prism.sampler/1`.
struct SamplerChecks {
    let instance: PluginInstance
    let callCount: Int

    func run(_ record: (String, () throws -> String) -> Void) {
        let sampler: any Sampler
        do {
            sampler = try instance.sampler()
        } catch {
            record("sampler: interface table") { throw error }
            return
        }
        let vocab = 32
        let logits = (0..<(4 * vocab)).map { Float(($0 * 7919) % 13) / 3 }
        record("sampler: zero rows") {
            var rng = RandomState(seed: 1)
            let tokens = try sampler.sample(logits: [], rows: 0, vocab: vocab, rng: &rng)
            try expect(tokens.isEmpty, "returned \(tokens.count) tokens for 0 rows")
            return "ok"
        }
        record("sampler: same state, same tokens") {
            var a = RandomState(seed: 7)
            var b = RandomState(seed: 7)
            let first = try sampler.sample(logits: logits, rows: 4, vocab: vocab, rng: &a)
            let second = try sampler.sample(logits: logits, rows: 4, vocab: vocab, rng: &b)
            try expect(first == second && a == b, "tokens \(first) vs \(second) from the same state")
            return "tokens \(first)"
        }
        record("sampler: never picks a forbidden (-inf) token") {
            var masked = logits
            for i in masked.indices where i % 2 == 1 { masked[i] = -.infinity }
            var rng = RandomState(seed: 3)
            for _ in 0..<callCount {
                let tokens = try sampler.sample(logits: masked, rows: 4, vocab: vocab, rng: &rng)
                try expect(tokens.allSatisfy { $0 % 2 == 0 }, "picked a -inf token in \(tokens)")
            }
            return "\(callCount) calls"
        }
        record("sampler: NaN logits fail cleanly or give a valid token") {
            var rng = RandomState(seed: 5)
            let bad = [Float](repeating: .nan, count: vocab)
            do {
                let tokens = try sampler.sample(logits: bad, rows: 1, vocab: vocab, rng: &rng)
                return "returned token \(tokens[0])"
            } catch let error as PluginError where error.code == .callFailed {
                return "refused: \(error.reason)"
            }
        }
    }
}
