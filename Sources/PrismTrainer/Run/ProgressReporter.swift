import Foundation
import PrismCore

/// Progress of a run: on a terminal, one live line (step, reward, accuracy,
/// all-negative share, tokens/s, ETA); otherwise a plain line per step. Fast
/// runs are throttled (at most 10 redraws or 1 plain line a second), but the
/// first and last steps and evaluation steps are always shown.
public final class ProgressReporter {
    let live: Bool
    let write: (String) -> Void
    private var total = 0
    private var startStep = 0
    private var started = Date()
    private var lineOpen = false
    private var lastShown = Date.distantPast

    /// - Parameters:
    ///   - live: redraw one line (a terminal) rather than print a line per step.
    ///   - write: where text goes (standard error by default).
    public init(live: Bool, write: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.live = live
        self.write = write
    }

    /// A reporter that prints nothing.
    public static var silent: ProgressReporter { ProgressReporter(live: false) { _ in } }

    private var budget = 0.0
    private var startSpent = 0.0

    /// - Parameters:
    ///   - budget: a token budget (0 = none); with one, the ETA follows the
    ///     tokens spent (`budget/spent`) rather than the steps.
    func start(total: Int, from step: Int, budget: Double = 0, spent: Double = 0) {
        self.total = total
        startStep = step
        self.budget = budget
        startSpent = spent
        started = Date()
    }

    func step(_ n: Int, metrics: StepMetrics) {
        let now = Date()
        let interval: TimeInterval = live ? 0.1 : 1
        let always = n == startStep + 1 || n == total || metrics[.evalAccuracy] != nil
        guard always || now.timeIntervalSince(lastShown) >= interval else { return }
        lastShown = now
        let done = n - startStep
        let elapsed = now.timeIntervalSince(started)
        var eta = done > 0 ? elapsed / Double(done) * Double(total - n) : 0
        if budget > 0, let spent = metrics[.budgetSpent], spent > startSpent {
            eta = min(eta, elapsed / (spent - startSpent) * max(budget - spent, 0))
        }
        let groups = max(metrics[.groupsTotal] ?? 0, 1)
        var text = String(format: "step %d/%d  reward %.3f  acc %.3f  all-neg %.2f  %.0f tok/s  ETA %@",
                          n, total, metrics[.reward] ?? .nan, metrics[.accuracy] ?? .nan,
                          (metrics[.groupsAllNegative] ?? 0) / groups, metrics[.tokensPerS] ?? 0,
                          Self.duration(eta))
        if let accuracy = metrics[.evalAccuracy] { text += String(format: "  eval acc %.3f", accuracy) }
        if live {
            write("\r\u{1B}[K" + text)
            lineOpen = true
        } else {
            write(text + "\n")
        }
    }

    func finish() {
        if lineOpen { write("\n") }
        lineOpen = false
    }

    /// A log line (closes the live line first).
    public func log(_ message: String) {
        finish()
        write(message + "\n")
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
    }
}
