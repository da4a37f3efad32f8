import CPrism
import PrismCore

/// One live instance of a plugin; destroyed when the last reference goes.
///
/// Get the Swift face of an interface with ``rewardFunction()``,
/// ``feedbackGenerator()``, ``sampler()``, ``computeBackend()`` or
/// ``groupStrategy()``; each adapter
/// keeps the instance alive. Calls on one instance must not be concurrent.
@safe public final class PluginInstance {
    public let library: PluginLibrary
    let handle: UnsafeMutableRawPointer?

    init(library: PluginLibrary, handle: UnsafeMutableRawPointer?) {
        self.library = library
        unsafe self.handle = handle
    }

    deinit { unsafe library.entry.destroy(handle) }

    /// The interface ids, among those this host knows, that the instance provides.
    public var interfaces: [String] {
        PluginInterface.allCases.map(\.id).filter { unsafe rawInterface($0) != nil }
    }

    /// The table for `id`, or nil. The corresponding C function is `get_interface`.
    func rawInterface(_ id: String) -> UnsafeRawPointer? {
        unsafe library.entry.get_interface(handle, id)
    }

    /// The table for `id`, validated: its size and every function pointer.
    func requireInterface<Table>(_ id: String, as: Table.Type, functions: [(String, Int)]) throws(PluginError)
        -> UnsafePointer<Table>
    {
        guard let raw = unsafe rawInterface(id) else {
            throw PluginError(
                .interfaceNotProvided, plugin: library.path,
                reason: "does not provide interface '\(id)' (it provides: \(interfaces.joined(separator: ", ")))")
        }
        let validator = unsafe TableValidator(plugin: library.path, table: "\(id) table", raw: raw)
        try unsafe validator.requireSize(MemoryLayout<Table>.size)
        try unsafe validator.requirePointers(functions)
        return unsafe raw.assumingMemoryBound(to: Table.self)
    }

    /// Turns a failed call into an error naming the plugin, the call and the
    /// plugin's `last_error`. The one place a status becomes a Swift error.
    func check(_ status: prism_status, _ call: String) throws(PluginError) {
        guard status != PRISM_OK else { return }
        let message = unsafe library.entry.last_error(handle).string
        throw PluginError(
            .callFailed, plugin: library.id,
            reason: "\(call) failed with \(statusName(status))\(message.isEmpty ? "" : ": \(message)")")
    }

    /// An error for output that breaks the ABI's contract.
    func invalidOutput(_ call: String, _ what: String) -> PluginError {
        PluginError(.invalidOutput, plugin: library.id, reason: "\(call) returned \(what)")
    }
}

/// The interfaces of ABI 1 (`strategy` since 1.1).
public enum PluginInterface: String, CaseIterable, Sendable {
    case reward, feedback, sampler, backend, strategy

    /// The versioned id, e.g. "prism.reward/1".
    public var id: String { "prism.\(rawValue)/1" }
}
