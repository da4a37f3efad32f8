#if canImport(Glibc)
import Glibc
#endif

/// Monotonic time in nanoseconds (`clock_gettime(CLOCK_MONOTONIC)`).
func nanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The best (smallest) time per unit over `repeats` runs of `body`, which
/// performs `units` units of work per run. Best-of-N filters out the noise of
/// a shared VM better than the mean.
func bestTime(repeats: Int = 5, units: Int, _ body: () throws -> Void) rethrows -> Double {
    var best = Double.infinity
    for _ in 0..<repeats {
        let start = nanoseconds()
        try body()
        best = min(best, Double(nanoseconds() - start) / Double(units))
    }
    return best
}

/// Keeps the optimizer from deleting benchmarked work.
@inline(never)
func blackHole<T>(_ value: T) {}
