import CPrism

extension prism_str {
    /// The bytes as a Swift string (invalid UTF-8 is repaired with U+FFFD).
    var string: String {
        guard let data = unsafe data, unsafe len > 0 else { return "" }
        return unsafe UnsafeRawBufferPointer(start: data, count: len)
            .withMemoryRebound(to: UInt8.self) { unsafe String(decoding: $0, as: UTF8.self) }
    }
}

/// Keeps UTF-8 copies of Swift strings alive for one C call and hands out
/// `prism_str` views of them. Release with `deallocate()` after the call.
@unsafe struct TextArena {
    private var buffers: [UnsafeMutableRawBufferPointer] = unsafe []

    /// A borrowed view of `text`, valid until `deallocate()`.
    mutating func str(_ text: String) -> prism_str {
        let count = text.utf8.count
        guard count > 0 else { return unsafe prism_str(data: nil, len: 0) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
        _ = unsafe buffer.initializeMemory(as: UInt8.self, from: text.utf8)
        unsafe buffers.append(buffer)
        return unsafe prism_str(data: buffer.baseAddress!.assumingMemoryBound(to: CChar.self), len: count)
    }

    func deallocate() {
        for unsafe buffer in unsafe buffers { unsafe buffer.deallocate() }
    }
}

/// A NUL-terminated static C string from the plugin, or "" when NULL.
func staticString(_ pointer: UnsafePointer<CChar>?) -> String {
    guard let pointer = unsafe pointer else { return "" }
    return unsafe String(cString: pointer)
}
