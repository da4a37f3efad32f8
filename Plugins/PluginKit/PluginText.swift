// Helpers for writing Prism plugins in Swift: strings across the ABI, the
// per-thread `create` error, and the backend's token and text buffers. Linked statically into each Swift plugin.
import CPrism
#if canImport(Glibc)
import Glibc
#endif

extension prism_str {
    /// The bytes as a Swift string (invalid UTF-8 is repaired).
    public var string: String {
        guard let data, len > 0 else { return "" }
        return UnsafeRawBufferPointer(start: data, count: len)
            .withMemoryRebound(to: UInt8.self) { String(decoding: $0, as: UTF8.self) }
    }

    /// The empty string.
    public static var empty: prism_str { prism_str(data: nil, len: 0) }
}

/// A message kept in stable memory so a `prism_str` can point into it until
/// the next `set` (what `last_error` needs).
public final class ErrorText: @unchecked Sendable {
    private var storage: UnsafeMutableBufferPointer<CChar>? = nil

    public init() {}
    deinit { storage?.deallocate() }

    public func set(_ message: String) {
        storage?.deallocate()
        let utf8 = Array(message.utf8CString)
        let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: utf8.count)
        _ = buffer.initialize(from: utf8)
        storage = buffer
    }

    public var prismStr: prism_str {
        guard let storage, let base = storage.baseAddress else { return .empty }
        return prism_str(data: base, len: storage.count - 1)
    }
}

/// The reason of the last failed `create`, per thread, for `last_error(NULL)`.
public final class CreateErrors: @unchecked Sendable {
    private var byThread: [UInt: ErrorText] = [:]
    private var lock = pthread_mutex_t()

    public init() { pthread_mutex_init(&lock, nil) }

    public func set(_ message: String) {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        let text = byThread[UInt(pthread_self())] ?? ErrorText()
        text.set(message)
        byThread[UInt(pthread_self())] = text
    }

    public func get() -> prism_str {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return byThread[UInt(pthread_self())]?.prismStr ?? .empty
    }
}

/// A static C string for the entry table's metadata.
public func staticCString(_ s: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

/// A table of type `T` in immortal storage (entry and interface tables).
public func immortal<T>(_ value: T) -> UnsafeMutablePointer<T> {
    let pointer = UnsafeMutablePointer<T>.allocate(capacity: 1)
    pointer.initialize(to: value)
    return pointer
}

/// The backend's capacity rule for `tokenize` and `tokenize_prompt`: the
/// count always, the ids only when they fit in `capacity` (else
/// PRISM_E_BUFFER_TOO_SMALL, and the host asks again with room for them).
public func writeTokens(_ ids: [Int32], to out: UnsafeMutablePointer<Int32>?, capacity: Int,
                        count: UnsafeMutablePointer<Int>) -> prism_status {
    count.pointee = ids.count
    guard capacity >= ids.count else { return PRISM_E_BUFFER_TOO_SMALL }
    if let out, !ids.isEmpty { ids.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: ids.count) } }
    return PRISM_OK
}

/// The same rule for `detokenize`, in bytes (no NUL is written).
public func writeText(_ bytes: [UInt8], to out: UnsafeMutablePointer<CChar>?, capacity: Int,
                      length: UnsafeMutablePointer<Int>) -> prism_status {
    length.pointee = bytes.count
    guard capacity >= bytes.count else { return PRISM_E_BUFFER_TOO_SMALL }
    if let out, !bytes.isEmpty {
        bytes.withUnsafeBytes { UnsafeMutableRawPointer(out).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
    }
    return PRISM_OK
}
