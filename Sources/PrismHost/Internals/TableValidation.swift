import CPrism

/// Checks a C table in place before Swift reads it as a typed struct (whose
/// non-null function pointers must not be NULL).
@unsafe struct TableValidator {
    /// Who is being validated, for error messages ("libfoo.so" or a plugin id).
    let plugin: String
    /// What the table is ("plugin entry", "prism.reward/1 table").
    let table: String
    let raw: UnsafeRawPointer

    /// The `struct_size` the plugin declares (first field of every table).
    var declaredSize: Int { Int(unsafe raw.load(as: UInt32.self)) }

    /// Throws `structTooSmall` unless the declared size covers `required` bytes.
    func requireSize(_ required: Int) throws(PluginError) {
        guard unsafe declaredSize >= required else {
            throw unsafe PluginError(
                .structTooSmall, plugin: plugin,
                reason: unsafe "\(table) declares struct_size \(declaredSize), but ABI 1.0 needs at least \(required) bytes")
        }
    }

    /// Throws `missingFunction` (or `structTooSmall` for a static string) if a
    /// mandatory pointer field at `offset` is NULL.
    func requirePointers(_ fields: [(name: String, offset: Int)], kind: String = "function") throws(PluginError) {
        for field in fields where unsafe raw.load(fromByteOffset: field.offset, as: UInt.self) == 0 {
            throw unsafe PluginError(
                .missingFunction, plugin: plugin,
                reason: unsafe "\(table) has no \(kind) '\(field.name)' (NULL); it is mandatory in ABI 1")
        }
    }
}

/// Offset of a field of a C struct, for validation.
func offset<T>(_ key: PartialKeyPath<T>) -> Int {
    MemoryLayout<T>.offset(of: key)!
}
