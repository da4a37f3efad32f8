import CPrism
#if canImport(Glibc)
import Glibc
#endif

/// Where plugin log lines go: one line each on standard error, prefixed with
/// the plugin id. Lines below `minimumLevel` are dropped.
public enum PluginLog {
    public enum Level: Int32, Sendable, Comparable {
        case debug = 0, info = 1, warning = 2, error = 3
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        var label: String { ["debug", "info", "warning", "error"][Int(rawValue)] }
    }

    /// Set once at startup (before loading plugins).
    public nonisolated(unsafe) static var minimumLevel: Level = .info
}

/// The state behind one library's `prism_host` table.
final class HostContext {
    let pluginID: String
    init(pluginID: String) { self.pluginID = pluginID }
}

/// Builds the `prism_host` table handed to a library's instances. Lives as
/// long as the process (libraries are never unloaded).
func makeHostTable(pluginID: String) -> UnsafePointer<prism_host> {
    let context = unsafe Unmanaged.passRetained(HostContext(pluginID: pluginID)).toOpaque()
    let table = UnsafeMutablePointer<prism_host>.allocate(capacity: 1)
    unsafe table.initialize(to: prism_host(
        struct_size: UInt32(MemoryLayout<prism_host>.size),
        abi_major: UInt16(PRISM_ABI_MAJOR),
        abi_minor: UInt16(PRISM_ABI_MINOR),
        host_ctx: context,
        log: { context, level, message in
            let level = PluginLog.Level(rawValue: min(max(level, 0), 3)) ?? .error
            guard unsafe level >= PluginLog.minimumLevel, let context = unsafe context else { return }
            let id = unsafe Unmanaged<HostContext>.fromOpaque(context).takeUnretainedValue().pluginID
            let line = "[\(id)] \(level.label): \(unsafe message.string)\n"
            _ = unsafe line.withCString { unsafe write(2, $0, strlen($0)) }
        },
        get_extension: { _, _ in nil }
    ))
    return unsafe UnsafePointer(table)
}
