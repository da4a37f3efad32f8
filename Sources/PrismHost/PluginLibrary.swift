/// A plugin library loaded with dlopen, its entry table validated.
///
/// Load with ``load(_:)``, then make instances with ``instantiate(config:)``.
/// The library stays loaded for the life of the process.
public final class PluginLibrary: Sendable {
    /// The absolute path the library was loaded from.
    public let path: String
    /// Reverse-DNS id, e.g. "org.prism.exact-answer".
    public let id: String
    public let name: String
    public let version: String
    public let summary: String
    /// The ABI version the plugin was built against.
    public let abiMajor: Int
    public let abiMinor: Int

    let native: NativeLibrary

    private init(path: String, native: NativeLibrary) {
        self.path = path
        self.native = native
        id = native.id
        name = native.name
        version = native.version
        summary = native.summary
        abiMajor = native.abiMajor
        abiMinor = native.abiMinor
    }

    /// Loads the plugin at `path` (made absolute) and validates its entry table.
    ///
    /// Calls `dlopen(RTLD_NOW | RTLD_LOCAL)`, `dlsym("prism_get_plugin_entry")`
    /// and the entry function with the host's ABI major.
    /// - Throws: ``PluginError`` with code `fileMissing`, `notSharedObject`,
    ///   `noEntrySymbol`, `entryReturnedNull`, `abiMismatch`, `structTooSmall`
    ///   or `missingFunction`, naming the file.
    public static func load(_ path: String) throws(PluginError) -> PluginLibrary {
        let path = absolutePath(path)
        return PluginLibrary(path: path, native: try NativeLibrary.load(absolutePath: path))
    }

    /// Creates an instance from a JSON config (the plugin's `create`).
    /// - Throws: ``PluginError`` `createFailed` with the plugin's `last_error`.
    public func instantiate(config: String = "{}") throws(PluginError) -> PluginInstance {
        PluginInstance(library: self, native: try native.create(config: config, path: path))
    }
}
