// Reading and writing safetensors files: an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
// {string: string}}, then the tensors' bytes. Only F32 is used here.
#if canImport(Glibc)
import Glibc
#endif

/// One tensor to write: a name, a shape and its floats.
public struct TensorSpec: Sendable {
    public var name: String
    public var shape: [Int]
    public var count: Int { shape.reduce(1, *) }
    public init(name: String, shape: [Int]) {
        self.name = name
        self.shape = shape
    }
}

public struct SafetensorsError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public enum Safetensors {
    /// Writes `tensors` (each read from its pointer) atomically: a temporary
    /// file in the same directory, fsync, then rename, so `path` is either the
    /// old file or the complete new one.
    public static func write(
        path: String, tensors: [(TensorSpec, UnsafePointer<Float>)], metadata: [(String, String)]
    ) throws(SafetensorsError) {
        var header = "{\"__metadata__\":{"
        header += metadata.map { "\(jsonString($0.0)):\(jsonString($0.1))" }.joined(separator: ",") + "}"
        var offset = 0
        for (spec, _) in tensors {
            let bytes = spec.count * 4
            header += ",\(jsonString(spec.name)):{\"dtype\":\"F32\",\"shape\":[\(spec.shape.map(String.init).joined(separator: ","))],"
                + "\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        header += "}"
        while (8 + header.utf8.count) % 8 != 0 { header += " " }
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw SafetensorsError("\(path): cannot create \(temporary): \(errorText())") }
        var ok = true
        var length = UInt64(header.utf8.count).littleEndian
        ok = ok && withUnsafeBytes(of: &length) { writeAll(fd, $0) }
        ok = ok && Array(header.utf8).withUnsafeBytes { writeAll(fd, $0) }
        for (spec, data) in tensors where ok {
            ok = writeAll(fd, UnsafeRawBufferPointer(start: data, count: spec.count * 4))
        }
        ok = ok && fsync(fd) == 0
        let message = errorText()
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw SafetensorsError("\(path): write failed: \(message)")
        }
    }

    /// A parsed file: its metadata and where each tensor's bytes are.
    public struct File {
        var bytes: [UInt8]
        var dataStart: Int
        /// The `__metadata__` entries.
        public internal(set) var metadata: [String: String]
        var tensors: [String: (shape: [Int], range: Range<Int>)]

        /// The tensors' names, sorted.
        public var tensorNames: [String] { tensors.keys.sorted() }

        /// The declared shape of tensor `name`.
        public func shape(of name: String) -> [Int]? { tensors[name]?.shape }

        /// The floats of tensor `name` checked against `shape`, or nil if absent.
        public func floats(_ name: String, shape: [Int], file: String) throws(SafetensorsError) -> [Float]? {
            guard let entry = tensors[name] else { return nil }
            guard entry.shape == shape else {
                throw SafetensorsError("\(file): tensor '\(name)' has shape \(entry.shape), expected \(shape)")
            }
            var count = 1
            for size in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: size)
                guard !overflow, product <= Int.max / 4 else {
                    throw SafetensorsError("\(file): tensor '\(name)' has a shape too large to hold: \(shape)")
                }
                count = product
            }
            guard entry.range.count == count * 4 else {
                throw SafetensorsError("\(file): tensor '\(name)' has \(entry.range.count) bytes, expected \(count * 4)")
            }
            var out = [Float](repeating: 0, count: count)
            out.withUnsafeMutableBytes { target in
                bytes.withUnsafeBytes { source in
                    target.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[(dataStart + entry.range.lowerBound)...].prefix(count * 4)))
                }
            }
            // Files are little-endian; so is every machine this runs on.
            return out
        }
    }

    /// Reads and validates the header of `path`.
    /// - Throws: when the file is missing, truncated or malformed, naming why.
    public static func read(path: String) throws(SafetensorsError) -> File {
        guard let handle = fopen(path, "rb") else { throw SafetensorsError("\(path): cannot open: \(errorText())") }
        defer { fclose(handle) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = fread(&chunk, 1, chunk.count, handle)
            if count == 0 { break }
            bytes += chunk[..<count]
        }
        return try parse(bytes, path: path)
    }

    /// Parses and validates a whole file's bytes; `path` names it in errors.
    public static func parse(_ bytes: [UInt8], path: String) throws(SafetensorsError) -> File {
        guard bytes.count >= 8 else {
            throw SafetensorsError("\(path): truncated: \(bytes.count) bytes, not even the 8-byte header length")
        }
        let headerLength = bytes[..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw SafetensorsError("\(path): truncated: header of \(headerLength) bytes but the file has \(bytes.count)")
        }
        let dataStart = 8 + Int(headerLength)
        let headerText = String(decoding: bytes[8..<dataStart], as: UTF8.self)
        guard let parsed = try? JSONValue.parse(headerText), case .object(let object) = parsed else {
            throw SafetensorsError("\(path): not a safetensors file (the header is not a JSON object)")
        }
        var metadata: [String: String] = [:]
        var tensors: [String: (shape: [Int], range: Range<Int>)] = [:]
        let dataLength = bytes.count - dataStart
        var end = 0
        for (name, value) in object {
            if name == "__metadata__" {
                if case .object(let entries) = value {
                    for (key, item) in entries { if case .string(let text) = item { metadata[key] = text } }
                }
                continue
            }
            guard case .object(let info) = value, case .string(let dtype)? = info["dtype"],
                  case .array(let shapeValues)? = info["shape"], case .array(let offsets)? = info["data_offsets"],
                  offsets.count == 2, case .number(let begin) = offsets[0], case .number(let stop) = offsets[1]
            else { throw SafetensorsError("\(path): tensor '\(name)' has a malformed header entry") }
            guard dtype == "F32" else { throw SafetensorsError("\(path): tensor '\(name)' is \(dtype), expected F32") }
            let shape = shapeValues.compactMap { value -> Int? in
                if case .number(let n) = value, n >= 0, n <= 1e12, n == n.rounded() { return Int(n) }
                return nil
            }
            guard shape.count == shapeValues.count else {
                throw SafetensorsError("\(path): tensor '\(name)' has a shape that is not a list of sizes")
            }
            guard begin == begin.rounded(), stop == stop.rounded(), begin >= 0, stop >= begin, stop <= Double(dataLength) else {
                throw SafetensorsError(
                    "\(path): truncated: tensor '\(name)' needs bytes \(begin)..<\(stop) but the data has \(dataLength)")
            }
            tensors[name] = (shape, Int(begin)..<Int(stop))
            end = max(end, Int(stop))
        }
        return File(bytes: bytes, dataStart: dataStart, metadata: metadata, tensors: tensors)
    }
}

private func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Bool {
    var done = 0
    while done < buffer.count {
        let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
        if n <= 0 { return false }
        done += n
    }
    return true
}

private func errorText() -> String { String(cString: strerror(errno)) }

/// A JSON string literal.
public func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
