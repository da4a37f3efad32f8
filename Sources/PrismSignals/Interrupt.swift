import CPrismSignals

/// Ctrl-C (SIGINT) or SIGTERM for a command-line tool: the first asks the
/// run to stop after the current step (poll ``requested``), a second exits
/// at once with status 130. Library code never installs it; an embedding
/// program cancels runs its own way.
public enum Interrupt {
    /// Installs the handlers (and unblocks both signals on this thread).
    public static func install() { prism_signals_install() }

    /// Whether a signal arrived since ``install()``.
    public static var requested: Bool { prism_signals_requested() != 0 }
}
