/// Mean and standard deviation over the non-NaN values of a sample.
///
/// Convention (the same as TRL's and verl's `torch.std`): the standard
/// deviation is Bessel-corrected, `sqrt(sum (x - mean)^2 / (n - 1))`, and is
/// 0 when fewer than two values are present.
public struct SampleStatistics: Sendable, Equatable {
    /// Number of non-NaN values.
    public var count: Int
    /// Their mean (0 when count is 0).
    public var mean: Double
    /// Their Bessel-corrected standard deviation (0 when count < 2).
    public var std: Double

    public init<S: Sequence>(_ values: S) where S.Element == Double {
        var n = 0
        var sum = 0.0
        var low = Double.infinity, high = -Double.infinity
        for x in values where !x.isNaN {
            n += 1
            sum += x
            low = min(low, x)
            high = max(high, x)
        }
        // Identical values have exactly their value as mean (a rounded sum
        // would leave 1-ulp "advantages" in groups that carry no signal).
        let mean = n == 0 ? 0 : low == high ? low : sum / Double(n)
        var squares = 0.0
        for x in values where !x.isNaN {
            squares += (x - mean) * (x - mean)
        }
        count = n
        self.mean = mean
        std = n > 1 ? (squares / Double(n - 1)).squareRoot() : 0
    }
}
