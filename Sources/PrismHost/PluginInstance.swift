/// One live instance of a plugin; destroyed when the last reference goes.
///
/// Get the Swift face of an interface with ``rewardFunction()``,
/// ``feedbackGenerator()``, ``sampler()``, ``computeBackend()`` or
/// ``groupStrategy()``; each adapter keeps the instance alive. Calls on one
/// instance must not be concurrent.
public final class PluginInstance {
    public let library: PluginLibrary
    let native: NativeInstance

    init(library: PluginLibrary, native: NativeInstance) {
        self.library = library
        self.native = native
    }

    /// The interface ids, among those this host knows, that the instance provides.
    public var interfaces: [String] {
        PluginInterface.allCases.map(\.id).filter { native.provides($0) }
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
