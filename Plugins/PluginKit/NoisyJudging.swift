import CPrism

// Judge noise for plugins that simulate an imperfect judge: with probability
// eps a judge reports a wrong first-error index, uniform over the others.

/// splitmix64: a small, seedable generator (not for cryptography).
public struct SplitMix: Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    public mutating func uniform() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
}

/// With probability `noise`, a step index other than `index`, uniform over
/// the `count - 1` others; otherwise `index`. Needs `count >= 2` to misreport.
public func misreport(_ index: Int, count: Int, noise: Double, rng: inout SplitMix) -> Int {
    guard count > 1, noise > 0, rng.uniform() < noise else { return index }
    let other = Int(rng.next() % UInt64(count - 1))
    return other < index ? other : other + 1
}

/// Whether a group handed to a judge has `first_error_spans` (a host of ABI
/// 1.2 or later; the C macro PRISM_FEEDBACK_GROUP_HAS_SPANS).
public func hasSpans(_ group: prism_feedback_group) -> Bool {
    Int(group.struct_size) >= MemoryLayout<prism_feedback_group>.offset(of: \.first_error_spans)!
        + MemoryLayout<UnsafeMutablePointer<prism_byte_span>>.size
}

/// Whether a group handed to a judge has `report` (a host of ABI 1.4 or
/// later; the C macro PRISM_FEEDBACK_GROUP_HAS_REPORT).
public func hasReport(_ group: prism_feedback_group) -> Bool {
    Int(group.struct_size) >= MemoryLayout<prism_feedback_group>.offset(of: \.report)!
        + MemoryLayout<UnsafeMutablePointer<prism_feedback_report>>.size
}
