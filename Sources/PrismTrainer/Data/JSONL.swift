import Foundation

/// A JSONL file could not be read; the description names the file and line.
public struct DataError: Error, CustomStringConvertible, Equatable {
    public var file: String
    /// 1-based line, or 0 for the file as a whole.
    public var line: Int
    public var message: String

    public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
}

/// Reading and writing JSON Lines.
public enum JSONL {
    /// Decodes every non-empty line of `path` as `T`.
    /// - Throws: ``DataError`` naming the file and line of the first bad line.
    public static func read<T: Decodable>(_ type: T.Type, from path: String) throws(DataError) -> [T] {
        try readNumbered(type, from: path).map(\.item)
    }

    /// Decodes every non-empty line of `path` as `T`, with its 1-based line number.
    /// - Throws: ``DataError`` naming the file and line of the first bad line
    ///   (invalid UTF-8 included).
    public static func readNumbered<T: Decodable>(_ type: T.Type, from path: String) throws(DataError)
        -> [(line: Int, item: T)]
    {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError(file: path, line: 0, message: "cannot read the file")
        }
        return try decodeNumbered(type, data: data, file: path)
    }

    /// Decodes every non-empty line of `data` (the contents of `file`).
    public static func decodeNumbered<T: Decodable>(_ type: T.Type, data: Data, file path: String) throws(DataError)
        -> [(line: Int, item: T)]
    {
        var items: [(line: Int, item: T)] = []
        let decoder = JSONDecoder()
        for (index, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\t") }) { continue }
            guard String(validating: line, as: UTF8.self) != nil else {
                throw DataError(file: path, line: index + 1, message: "not valid UTF-8")
            }
            do {
                items.append((index + 1, try decoder.decode(T.self, from: Data(line))))
            } catch let DecodingError.keyNotFound(key, _) {
                throw DataError(file: path, line: index + 1, message: "missing key '\(key.stringValue)'")
            } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
                let key = context.codingPath.map(\.stringValue).joined(separator: ".")
                throw DataError(file: path, line: index + 1, message: "key '\(key)': \(context.debugDescription)")
            } catch {
                throw DataError(file: path, line: index + 1, message: "not valid JSON")
            }
        }
        return items
    }

    /// Writes one JSON object per line, atomically (temporary file + rename).
    public static func write<T: Encodable>(_ items: [T], to path: String) throws {
        var data = Data()
        let encoder = JSONEncoder.sorted
        for item in items {
            data.append(try encoder.encode(item))
            data.append(UInt8(ascii: "\n"))
        }
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Appends one JSON object as a line to an open file.
    public static func append<T: Encodable>(_ item: T, to handle: FileHandle) throws {
        var data = try JSONEncoder.sorted.encode(item)
        data.append(UInt8(ascii: "\n"))
        try handle.write(contentsOf: data)
    }
}

