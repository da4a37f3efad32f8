import CPrism

/// A loaded library's validated entry table and its `prism_host` table: the
/// C side of ``PluginLibrary``.
@safe struct NativeLibrary: @unchecked Sendable {
    let entry: prism_plugin_entry
    let host: UnsafePointer<prism_host>

    /// Static metadata strings of the entry table.
    var id: String { unsafe staticString(entry.id) }
    var name: String { unsafe staticString(entry.name) }
    var version: String { unsafe staticString(entry.version) }
    var summary: String { unsafe staticString(entry.description) }
    var abiMajor: Int { unsafe Int(entry.abi_major) }
    var abiMinor: Int { unsafe Int(entry.abi_minor) }

    /// Calls `dlopen(RTLD_NOW | RTLD_LOCAL)`, `dlsym("prism_get_plugin_entry")`
    /// and the entry function with the host's ABI major, then validates the
    /// table. `path` is absolute.
    static func load(absolutePath path: String) throws(PluginError) -> NativeLibrary {
        guard regularFileExists(path) else {
            throw PluginError(.fileMissing, plugin: path, reason: "no such file")
        }
        try LoadRules.check(path)
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
        let entry = unsafe entryPointer.pointee
        return unsafe NativeLibrary(entry: entry, host: makeHostTable(pluginID: staticString(entry.id)))
    }

    /// The plugin's `create` with a JSON config.
    /// - Throws: ``PluginError`` `createFailed` with the plugin's `last_error`.
    func create(config: String, path: String) throws(PluginError) -> NativeInstance {
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
        return unsafe NativeInstance(entry: entry, handle: handle)
    }
}

/// One instance handle, destroyed with the object: the C side of
/// ``PluginInstance``.
@safe final class NativeInstance {
    let entry: prism_plugin_entry
    let handle: UnsafeMutableRawPointer?

    init(entry: prism_plugin_entry, handle: UnsafeMutableRawPointer?) {
        unsafe self.entry = entry
        unsafe self.handle = handle
    }

    deinit { unsafe entry.destroy(handle) }

    /// The table for `id`, or nil. The corresponding C function is `get_interface`.
    func interface(_ id: String) -> UnsafeRawPointer? {
        unsafe entry.get_interface(handle, id)
    }

    /// Whether the instance provides interface `id`.
    func provides(_ id: String) -> Bool { unsafe interface(id) != nil }

    /// The instance's `last_error` message.
    var lastError: String { unsafe entry.last_error(handle).string }
}

extension PluginInstance {
    /// The plugin's instance pointer, for the adapters' calls.
    var handle: UnsafeMutableRawPointer? { unsafe native.handle }

    /// The table for `id`, validated: its size and every function pointer.
    func requireInterface<Table>(_ id: String, as: Table.Type, functions: [(String, Int)]) throws(PluginError)
        -> UnsafePointer<Table>
    {
        guard let raw = unsafe native.interface(id) else {
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
        let message = native.lastError
        throw PluginError(
            .callFailed, plugin: library.id,
            reason: "\(call) failed with \(statusName(status))\(message.isEmpty ? "" : ": \(message)")")
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
