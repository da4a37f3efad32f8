import Foundation
import PrismDigest

extension SHA256 {
    /// The hex digest of `data`.
    static func hex(_ data: Data) -> String { hex([UInt8](data)) }

    /// The hex digest of a file, read in 1 MiB pieces.
    static func hex(file path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw TrainerError("\(path): cannot be read") }
        defer { try? handle.close() }
        var hash = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hash.update([UInt8](chunk))
        }
        return hash.finish()
    }
}
