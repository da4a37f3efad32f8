import CPrismSignals
import Foundation

/// Ctrl-C (SIGINT) or SIGTERM for a command-line tool. The first signal is
/// acknowledged at once on standard error and asks the run to stop at its
/// next safe point (poll ``requested``); if none comes within the grace
/// period (a plugin call that never returns), `onStuck` runs on the watcher
/// thread and the process exits with 128 + the signal. A second signal exits
/// at once. Library code never installs it; an embedding program cancels
/// runs its own way.
public enum Interrupt {
    /// Installs the handlers and starts the watcher thread.
    /// - Parameters:
    ///   - grace: seconds between the acknowledgement and `onStuck`.
    ///   - onStuck: asked after each grace period: nil while the run is
    ///     stopping in order (e.g. writing its checkpoint), else the last word
    ///     before exit (what an emergency checkpoint saved). The default
    ///     always waits (a second signal still exits at once).
    public static func install(grace: Double = 2, onStuck: @escaping @Sendable () -> String? = { nil }) {
        prism_signals_install()
        let thread = Thread {
            prism_signals_block_in_thread()
            let signal = prism_signals_wait(-1)
            guard signal != 0 else { return }
            let name = signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)"
            FileHandle.standardError.write(Data(
                "\nprism: \(name) received; stopping at the next safe point (a second signal exits at once)\n".utf8))
            var last: String?
            repeat {
                Thread.sleep(forTimeInterval: grace)
                last = onStuck()
            } while last == nil
            FileHandle.standardError.write(Data(
                "prism: no safe point within \(String(format: "%g", grace)) s (a plugin call does not return); \(last!); exiting\n".utf8))
            _exit(128 + signal)
        }
        thread.start()
    }

    /// Whether a signal arrived since ``install(grace:onStuck:)``.
    public static var requested: Bool { prism_signals_requested() != 0 }

    /// The exit status that reports the signal (130 for SIGINT, 143 for
    /// SIGTERM), or nil when none came.
    public static var exitStatus: Int32? {
        let signal = prism_signals_requested()
        return signal == 0 ? nil : 128 + signal
    }
}
