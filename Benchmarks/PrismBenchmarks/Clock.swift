import CPrismKernels
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

/// The FMA peak at `threads` threads as the best of two measurements, one
/// taken before a benchmark's work (`before`) and one after: on a shared VM
/// a second vCPU can be taken away for a whole half second, and a peak
/// measured then is one core's (a "% of peak" above 100 gave it away).
func peakGFLOPS(threads: Int, before: Double) -> Double {
    max(before, pk_fma_peak_gflops(Int32(threads), 0.5))
}
