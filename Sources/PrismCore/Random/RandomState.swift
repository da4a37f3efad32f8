/// The run's random state: xoshiro256**, the generator fixed by the ABI
/// (`prism_rng` in `SDK/include/prism/sampler.h`), so the host can own,
/// checkpoint and hand it to sampler plugins. Never all zero.
public struct RandomState: Sendable, Hashable, RandomNumberGenerator {
    /// The four 64-bit words of the state, in ABI order.
    public var words: (UInt64, UInt64, UInt64, UInt64)

    /// Seeds the state from one 64-bit seed with splitmix64, as `prism_rng_seed` does.
    public init(seed: UInt64) {
        var s = seed
        func splitmix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        words = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public init(words: (UInt64, UInt64, UInt64, UInt64)) {
        precondition(words != (0, 0, 0, 0), "xoshiro256** state must not be all zero")
        self.words = words
    }

    /// The next 64 random bits, as `prism_rng_next` computes them.
    public mutating func next() -> UInt64 {
        let result = rotl(words.1 &* 5, 7) &* 9
        let t = words.1 << 17
        words.2 ^= words.0
        words.3 ^= words.1
        words.1 ^= words.2
        words.0 ^= words.3
        words.2 ^= t
        words.3 = rotl(words.3, 45)
        return result
    }

    /// A double uniform in [0, 1), as `prism_rng_uniform` computes it.
    public mutating func uniform() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    public static func == (a: RandomState, b: RandomState) -> Bool { a.words == b.words }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}
