import CPrismIsolation
import Foundation

/// The shared memory of one runner channel: the host's memfd, mapped on
/// both sides; bulk arrays of a message are written here, not into the
/// socket. Either side may grow it; the other remaps when it reads past
/// its mapping.
final class SharedRegion {
    private var raw: prism_iso_region

    init(descriptor: Int32) { raw = prism_iso_region(fd: descriptor, base: nil, size: 0) }

    deinit {
        prism_iso_region_unmap(&raw)
        close(raw.fd)
    }

    var descriptor: Int32 { raw.fd }

    /// A mapping of at least `size` bytes.
    func reserve(_ size: Int) throws -> UnsafeMutableRawPointer {
        let status = prism_iso_region_reserve(&raw, size)
        guard status == 0, let base = raw.base else { throw WireError("shared memory of \(size) bytes: \(errorText(-status))") }
        return UnsafeMutableRawPointer(base)
    }

    /// The mapping, remapped if the peer grew the file past `end`.
    func mapping(covering end: Int) throws -> UnsafeRawPointer {
        if end > raw.size {
            let status = prism_iso_region_refresh(&raw)
            guard status == 0 else { throw WireError("shared memory: \(errorText(-status))") }
        }
        guard end <= raw.size, let base = raw.base else { throw WireError("an array past the end of the shared memory") }
        return UnsafeRawPointer(base)
    }
}

/// A malformed message between the host and a runner.
struct WireError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }

/// Builds one message: scalars and strings inline (they travel in the
/// socket frame), arrays in the shared memory (the frame carries their
/// offset and count).
struct WireWriter {
    private(set) var bytes: [UInt8] = []
    let region: SharedRegion
    private var bulkEnd = 0

    init(region: SharedRegion) { self.region = region }

    mutating func int(_ value: Int) { withUnsafeBytes(of: Int64(value).littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func double(_ value: Double) { int(Int(Int64(bitPattern: value.bitPattern))) }
    mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }
    mutating func string(_ value: String) {
        int(value.utf8.count)
        bytes.append(contentsOf: value.utf8)
    }
    mutating func strings(_ values: [String]) {
        int(values.count)
        for value in values { string(value) }
    }
    /// An optional Int as an Int with -1 for nil (every such value is >= 0).
    mutating func optional(_ value: Int?) { int(value ?? -1) }

    /// An array of plain values in the shared memory.
    mutating func array<T: BitwiseCopyable>(_ values: [T]) throws {
        let size = values.count * MemoryLayout<T>.stride
        let offset = (bulkEnd + 15) & ~15
        int(values.count)
        int(offset)
        guard size > 0 else { return }
        let base = try region.reserve(offset + size)
        values.withUnsafeBytes { (base + offset).copyMemory(from: $0.baseAddress!, byteCount: size) }
        bulkEnd = offset + size
    }

    mutating func bools(_ values: [Bool]) throws { try array(values.map { UInt8($0 ? 1 : 0) }) }
    mutating func doublesList(_ values: [[Double]]) throws {
        try array(values.map(\.count))
        try array(values.flatMap { $0 })
    }
}

/// Reads one message in the order it was written.
struct WireReader {
    let bytes: [UInt8]
    let region: SharedRegion
    private var at = 0

    init(bytes: [UInt8], region: SharedRegion) {
        self.bytes = bytes
        self.region = region
    }

    private mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, at + count <= bytes.count else { throw WireError("a message ends early") }
        defer { at += count }
        return bytes[at..<(at + count)]
    }

    mutating func int() throws -> Int {
        let slice = try take(8)
        var value: Int64 = 0
        withUnsafeMutableBytes(of: &value) { $0.copyBytes(from: slice) }
        return Int(Int64(littleEndian: value))
    }
    mutating func double() throws -> Double { Double(bitPattern: UInt64(bitPattern: Int64(try int()))) }
    mutating func bool() throws -> Bool { try take(1).first! != 0 }
    mutating func string() throws -> String {
        let count = try int()
        return String(decoding: try take(count), as: UTF8.self)
    }
    mutating func strings() throws -> [String] {
        let count = try int()
        guard count >= 0, count <= bytes.count else { throw WireError("a list of \(count) strings") }
        return try (0..<count).map { _ in try string() }
    }
    mutating func optional() throws -> Int? {
        let value = try int()
        return value < 0 ? nil : value
    }

    mutating func array<T: BitwiseCopyable>(_: T.Type = T.self) throws -> [T] {
        let count = try int()
        let offset = try int()
        guard count >= 0, offset >= 0, count <= Int(Int32.max) else { throw WireError("an array of \(count) at \(offset)") }
        let size = count * MemoryLayout<T>.stride
        guard size > 0 else { return [] }
        let base = try region.mapping(covering: offset + size)
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: base + offset, byteCount: size)
            initialized = count
        }
    }

    mutating func bools() throws -> [Bool] { try array(UInt8.self).map { $0 != 0 } }
    mutating func doublesList() throws -> [[Double]] {
        let counts = try array(Int.self)
        let flat = try array(Double.self)
        guard counts.allSatisfy({ $0 >= 0 }), counts.reduce(0, +) == flat.count else { throw WireError("a ragged list that does not add up") }
        var out: [[Double]] = []
        var start = 0
        for count in counts {
            out.append(Array(flat[start..<(start + count)]))
            start += count
        }
        return out
    }
}
