import CPrismIsolation
import Foundation
import PrismCore
import PrismHost

/// What an isolated plugin is and how it is treated: where its runner
/// finds it, which interface the host uses, its deadline and how many
/// failures in a row it may have.
public struct IsolationSpec: Sendable {
    public var interface: PluginInterface
    /// The library (absolute path) and the instance's JSON config.
    public var library: String
    public var config: String
    /// The config key that chose it, for messages ("reward.plugin").
    public var role: String
    /// Seconds each call may take; 0 = no deadline.
    public var timeout: Double
    /// Failures (crash or deadline) in a row after which no more calls are made.
    public var quarantineAfter: Int
    /// Whether a dead runner may be replaced by a fresh one. Not for a
    /// backend: its weights died with it.
    public var restartable: Bool

    public init(interface: PluginInterface, library: String, config: String = "{}", role: String, timeout: Double = 60,
                quarantineAfter: Int = 3, restartable: Bool = true) {
        self.interface = interface
        self.library = library
        self.config = config
        self.role = role
        self.timeout = timeout
        self.quarantineAfter = quarantineAfter
        self.restartable = restartable
    }
}

/// The host's end of one runner process: spawns it, sends each call as a
/// length-prefixed frame (arrays through shared memory), waits for the
/// answer within the deadline, and turns a crash, a deadline or a
/// cancellation into an error naming the plugin and the call. A failed
/// runner is replaced on the next call after a backoff (0.1 s doubling,
/// at most 2 s); after `quarantineAfter` failures in a row the plugin gets
/// no more calls.
public final class RunnerChannel {
    public let spec: IsolationSpec
    /// Polled every 50 ms while a call waits: true kills the runner and
    /// throws ``Cancelled`` (a stop, not a plugin failure). Not for a
    /// backend, whose call is awaited: killing it would lose the weights.
    public var shouldCancel: () -> Bool
    /// Runner failures (crashes and deadlines) so far, and in a row.
    public private(set) var failures = 0
    public private(set) var failuresInARow = 0
    /// Runners started so far (1 + restarts).
    public private(set) var starts = 0
    /// The plugin's id, once a runner has loaded it.
    public private(set) var pluginID: String?
    /// For a strategy: whether it needs the judge (from the runner's `open`).
    public private(set) var needsJudge = false

    private var pid: pid_t = 0
    private var socket: Int32 = -1
    private var region: SharedRegion?
    private var lastFailure = ""
    private var dead: String?

    public init(_ spec: IsolationSpec, shouldCancel: @escaping () -> Bool = { false }) {
        self.spec = spec
        self.shouldCancel = shouldCancel
    }

    deinit { stop() }

    /// "reward plugin libx.so (org.example.x)".
    var label: String {
        let file = URL(fileURLWithPath: spec.library).lastPathComponent
        return "\(spec.role) \(file)" + (pluginID.map { " (\($0))" } ?? "")
    }

    /// Where the runner executable is: `PRISM_RUNNER`, else next to the
    /// running executable, else in the plugin search directories (next to
    /// libPrismEmbed.so when Prism is embedded, then `PRISM_PLUGIN_PATH`).
    public static func runnerPath() -> String? {
        if let explicit = ProcessInfo.processInfo.environment["PRISM_RUNNER"], !explicit.isEmpty { return explicit }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
        return ([executable] + PluginDiscovery.searchDirectories())
            .map { $0 + "/prism-plugin-runner" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Makes one call: `name` and what `write` adds; returns the answer's reader.
    /// - Throws: the plugin's own ``PluginError`` when it reports a failure;
    ///   `crashed`, `timedOut`, `quarantined` or `runnerFailed` for the
    ///   runner; ``Cancelled`` when `shouldCancel` said so.
    func call(_ name: String, _ write: (inout WireWriter) throws -> Void) throws -> WireReader {
        if let dead { throw PluginError(.crashed, plugin: label, reason: "\(name): not called; \(dead)") }
        if spec.quarantineAfter > 0 && failuresInARow >= spec.quarantineAfter {
            throw PluginError(.quarantined, plugin: label,
                              reason: "\(name): not called; quarantined after \(failuresInARow) failures in a row (last: \(lastFailure))")
        }
        try ensureRunning()
        var writer = WireWriter(region: region!)
        writer.string(name)
        try write(&writer)
        return try exchange(name, writer.bytes)
    }

    private func exchange(_ name: String, _ bytes: [UInt8]) throws -> WireReader {
        let sent = bytes.withUnsafeBytes { prism_iso_send(socket, $0.baseAddress, UInt32($0.count)) }
        guard sent == 0 else { throw try failure(name, nil) }
        let deadline = spec.timeout > 0 ? Date(timeIntervalSinceNow: spec.timeout) : nil
        while true {
            let ready = prism_iso_wait(socket, 50)
            if ready != 0 { break }
            // A stateless plugin's call is abandoned (its runner killed, a new one
            // starts later); a backend's is awaited, since its runner holds the weights.
            if spec.restartable && shouldCancel() {
                stop()
                throw Cancelled("\(spec.role.replacingOccurrences(of: ".plugin", with: "")).\(name)")
            }
            if let deadline, Date() >= deadline {
                throw try failure(name, String(format: "no answer within %g s (%@.timeout_s); the runner was killed",
                                               spec.timeout, spec.role.replacingOccurrences(of: ".plugin", with: "")))
            }
        }
        var header = [UInt8](repeating: 0, count: 4)
        guard header.withUnsafeMutableBytes({ prism_iso_read(socket, $0.baseAddress, 4, 10_000) }) == 0 else {
            throw try failure(name, nil)
        }
        let length = Int(header[0]) | Int(header[1]) << 8 | Int(header[2]) << 16 | Int(header[3]) << 24
        guard length <= maximumFrame else {
            throw try failure(name, "answered with a frame of \(length) bytes (at most \(maximumFrame)); the runner was killed",
                              code: .runnerFailed)
        }
        var body = [UInt8](repeating: 0, count: length)
        guard length == 0 || body.withUnsafeMutableBytes({ prism_iso_read(socket, $0.baseAddress, length, 10_000) }) == 0 else {
            throw try failure(name, nil)
        }
        var reader = WireReader(bytes: body, region: region!)
        if name != "open" { failuresInARow = 0 }  // a call answered; a fresh runner opening proves nothing yet
        guard try reader.bool() else {
            let code = try reader.string(), plugin = try reader.string(), reason = try reader.string()
            throw PluginError(.named(code), plugin: plugin, reason: reason)
        }
        return reader
    }

    /// Kills and reaps the runner after a failed exchange; counts the
    /// failure; the error says what happened (a signal, an exit, a deadline).
    private func failure(_ name: String, _ killed: String?, code given: PluginError.Code? = nil) throws -> PluginError {
        // The socket failed but the process may live on (it closed it): give it a moment.
        var signal: Int32 = 0, status: Int32 = 0
        prism_iso_end(pid, killed == nil ? 500 : 0, &signal, &status)
        self.pid = 0
        closeChannel()
        let what: String
        if let killed {
            what = killed
        } else if signal != 0 {
            what = "the runner died with signal \(signal) (\(signalName(signal)))"
        } else {
            what = "the runner exited with status \(status) during the call"
        }
        failures += 1
        failuresInARow += 1
        lastFailure = what
        let code: PluginError.Code = given ?? (killed == nil ? .crashed : .timedOut)
        if !spec.restartable {
            dead = "its runner is gone (\(what)) and a \(spec.role.replacingOccurrences(of: ".plugin", with: "")) cannot be restarted without losing its state"
            return PluginError(code, plugin: label, reason: "\(name): \(what)")
        }
        let next = spec.quarantineAfter > 0 && failuresInARow >= spec.quarantineAfter
            ? "quarantined: no more calls in this run"
            : "a new runner starts on the next call (\(failuresInARow) of \(spec.quarantineAfter) failures in a row before quarantine)"
        return PluginError(code, plugin: label, reason: "\(name): \(what); \(next)")
    }

    /// Starts a runner (after the backoff when the last one failed) and opens the plugin in it.
    private func ensureRunning() throws {
        guard pid == 0 else { return }
        if failuresInARow > 0 {
            let until = Date(timeIntervalSinceNow: min(0.1 * pow(2, Double(failuresInARow - 1)), 2))
            while Date() < until {
                if shouldCancel() { throw Cancelled("\(spec.role) restart") }
                _ = prism_iso_wait(-1, 20)
            }
        }
        guard let runner = Self.runnerPath() else {
            throw PluginError(.runnerFailed, plugin: label,
                              reason: "isolation: process needs the prism-plugin-runner executable next to this program (or PRISM_RUNNER)")
        }
        var pair: [Int32] = [-1, -1]
        let memory = prism_iso_memfd()
        guard memory >= 0, pair.withUnsafeMutableBufferPointer({ prism_iso_socketpair($0.baseAddress) }) == 0 else {
            if memory >= 0 { close(memory) }
            throw PluginError(.runnerFailed, plugin: label, reason: "cannot create the runner's channel: \(errorText(errno))")
        }
        let arguments = [runner, "serve"]
        var cArguments = arguments.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var child: pid_t = 0
        let spawned = prism_iso_spawn(runner, &cArguments, pair[1], memory, &child)
        close(pair[1])
        guard spawned == 0 else {
            close(pair[0])
            close(memory)
            throw PluginError(.runnerFailed, plugin: label, reason: "cannot start \(runner): \(errorText(-spawned))")
        }
        pid = child
        socket = pair[0]
        region = SharedRegion(descriptor: memory)
        starts += 1
        var writer = WireWriter(region: region!)
        writer.string("open")
        writer.string(spec.interface.rawValue)
        writer.string(spec.library)
        writer.string(spec.config)
        var reader: WireReader
        do {
            reader = try exchange("open", writer.bytes)
        } catch let error as PluginError where error.code != .crashed && error.code != .timedOut {
            stop()  // the plugin does not load or create: a config error, not a runner failure
            throw error
        }
        pluginID = try reader.string()
        needsJudge = try reader.bool()
    }

    private func closeChannel() {
        if socket >= 0 { close(socket) }
        socket = -1
        region = nil
    }

    /// Ends the runner (closing its socket; it exits), killing it if needed.
    public func stop() {
        closeChannel()  // the runner sees the end of its socket and exits
        guard pid != 0 else { return }
        var signal: Int32 = 0, status: Int32 = 0
        prism_iso_end(pid, 1000, &signal, &status)
        pid = 0
    }
}

/// The largest frame either side accepts: frames carry scalars and texts;
/// arrays travel in shared memory.
let maximumFrame = 1 << 28

func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGSEGV: "SIGSEGV, a memory fault"
    case SIGABRT: "SIGABRT, an abort"
    case SIGBUS: "SIGBUS"
    case SIGFPE: "SIGFPE, an arithmetic fault"
    case SIGILL: "SIGILL"
    case SIGKILL: "SIGKILL"
    case SIGTERM: "SIGTERM"
    case SIGTRAP: "SIGTRAP, a trap such as a Swift runtime failure"
    default: "signal \(signal)"
    }
}
