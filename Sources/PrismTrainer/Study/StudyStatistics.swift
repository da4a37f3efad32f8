/// Means with 95% confidence intervals over seeds.
public struct Interval: Sendable, Equatable {
    public var mean: Double
    /// Half-width of the 95% interval (Student t over the seeds); NaN for one value.
    public var halfWidth: Double
    public var count: Int

    /// The interval of `values` (NaNs left out).
    public init(_ values: [Double]) {
        let finite = values.filter { !$0.isNaN }
        count = finite.count
        let m = finite.isEmpty ? .nan : finite.reduce(0, +) / Double(finite.count)
        mean = m
        guard finite.count > 1 else {
            halfWidth = .nan
            return
        }
        let variance = finite.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(finite.count - 1)
        halfWidth = Interval.t975(degreesOfFreedom: finite.count - 1) * (variance / Double(finite.count)).squareRoot()
    }

    public var low: Double { mean - (halfWidth.isNaN ? 0 : halfWidth) }
    public var high: Double { mean + (halfWidth.isNaN ? 0 : halfWidth) }

    /// "12.3 ± 4.5" (or "12.3" for one value).
    public func formatted(_ digits: Int = 1) -> String {
        let m = Interval.format(mean, digits)
        return halfWidth.isNaN ? m : "\(m) ± \(Interval.format(halfWidth, digits))"
    }

    static func format(_ x: Double, _ digits: Int) -> String {
        x.isFinite ? String(format: "%.\(digits)f", x) : "\(x)"
    }

    /// The 0.975 quantile of Student's t distribution.
    public static func t975(degreesOfFreedom df: Int) -> Double {
        let table: [Double] = [
            12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
            2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
            2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
        ]
        if df < 1 { return .nan }
        if df <= table.count { return table[df - 1] }
        if df <= 60 { return 2.000 + (2.042 - 2.000) * Double(60 - df) / 30 }
        return 1.96
    }
}
