import CPrism

/// A plugin library loaded with dlopen, its entry table validated.
///
/// Load with ``load(_:)``, then make instances with ``instantiate(config:)``.
/// The library stays loaded for the life of the process.
@safe public final class PluginLibrary: @unchecked Sendable {
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

    let entry: prism_plugin_entry
    let host: UnsafePointer<prism_host>

    private init(path: String, entry: prism_plugin_entry) {
        self.path = path
        unsafe self.entry = unsafe entry
        id = unsafe staticString(entry.id)
        name = unsafe staticString(entry.name)
        version = unsafe staticString(entry.version)
        summary = unsafe staticString(entry.description)
        abiMajor = unsafe Int(entry.abi_major)
        abiMinor = unsafe Int(entry.abi_minor)
        unsafe host = unsafe makeHostTable(pluginID: id)
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
        guard regularFileExists(path) else {
            throw PluginError(.fileMissing, plugin: path, reason: "no such file")
        }
        let library: DynamicLibrary
        do {
            unsafe library = unsafe try DynamicLibrary.open(absolutePath: path)
        } catch {
            throw PluginError(.notSharedObject, plugin: path, reason: "not a loadable shared object (\(error.message))")
        }
        guard let symbol = unsafe library.symbol(PRISM_ENTRY_SYMBOL) else {
            throw PluginError(
                .noEntrySymbol, plugin: path,
                reason: "does not export '\(PRISM_ENTRY_SYMBOL)'; is it a Prism plugin?")
        }
        let getEntry = unsafe unsafeBitCast(symbol, to: prism_get_plugin_entry_fn.self)
        guard let entryPointer = unsafe getEntry(UInt16(PRISM_ABI_MAJOR)) else {
            throw PluginError(
                .entryReturnedNull, plugin: path,
                reason: "\(PRISM_ENTRY_SYMBOL)(\(PRISM_ABI_MAJOR)) returned NULL: the plugin cannot serve ABI \(PRISM_ABI_MAJOR)")
        }
        let validator = unsafe TableValidator(plugin: path, table: "plugin entry", raw: UnsafeRawPointer(entryPointer))
        let major = unsafe validator.raw.load(fromByteOffset: offset(\prism_plugin_entry.abi_major), as: UInt16.self)
        let minor = unsafe validator.raw.load(fromByteOffset: offset(\prism_plugin_entry.abi_minor), as: UInt16.self)
        guard major == PRISM_ABI_MAJOR else {
            throw PluginError(
                .abiMismatch, plugin: path,
                reason: "plugin ABI is \(major).\(minor) but this host speaks ABI \(PRISM_ABI_MAJOR).\(PRISM_ABI_MINOR) (majors must match)")
        }
        try unsafe validator.requireSize(MemoryLayout<prism_plugin_entry>.size)
        try unsafe validator.requirePointers([
            ("id", offset(\prism_plugin_entry.id)),
            ("name", offset(\prism_plugin_entry.name)),
            ("version", offset(\prism_plugin_entry.version)),
            ("description", offset(\prism_plugin_entry.description)),
        ], kind: "string")
        try unsafe validator.requirePointers([
            ("create", offset(\prism_plugin_entry.create)),
            ("destroy", offset(\prism_plugin_entry.destroy)),
            ("get_interface", offset(\prism_plugin_entry.get_interface)),
            ("last_error", offset(\prism_plugin_entry.last_error)),
        ])
        return unsafe PluginLibrary(path: path, entry: entryPointer.pointee)
    }

    /// Creates an instance from a JSON config (the plugin's `create`).
    /// - Throws: ``PluginError`` `createFailed` with the plugin's `last_error`.
    public func instantiate(config: String = "{}") throws(PluginError) -> PluginInstance {
        var arena = unsafe TextArena()
        defer { unsafe arena.deallocate() }
        var handle: UnsafeMutableRawPointer? = nil
        let status = unsafe entry.create(host, arena.str(config), &handle)
        guard status == PRISM_OK else {
            let message = unsafe entry.last_error(nil).string
            throw PluginError(
                .createFailed, plugin: path,
                reason: "create failed with \(statusName(status))\(message.isEmpty ? "" : ": \(message)")")
        }
        return unsafe PluginInstance(library: self, handle: handle)
    }
}

/// A readable name for a status code.
func statusName(_ status: prism_status) -> String {
    let names: [Int32: String] = [
        PRISM_E_INVALID_ARGUMENT: "invalid argument", PRISM_E_CONFIG: "config error",
        PRISM_E_UNSUPPORTED: "unsupported", PRISM_E_OUT_OF_MEMORY: "out of memory",
        PRISM_E_IO: "I/O error", PRISM_E_TIMEOUT: "timeout", PRISM_E_BUFFER_TOO_SMALL: "buffer too small",
        PRISM_E_STATE: "wrong state", PRISM_E_INTERNAL: "internal error",
    ]
    return "status \(status) (\(names[status] ?? "unknown"))"
}
