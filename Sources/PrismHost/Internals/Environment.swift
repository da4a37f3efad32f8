#if canImport(Glibc)
import Glibc
#endif

/// The value of an environment variable. The corresponding C function is `getenv`.
func environment(_ name: String) -> String? {
    guard let value = unsafe getenv(name) else { return nil }
    return unsafe String(cString: value)
}

/// The path of the running executable, from `/proc/self/exe` (`readlink`).
func executablePath() -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = unsafe readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard count > 0 else { return nil }
    return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The path of the file holding this code: the executable when PrismHost is
/// linked into it, else the shared library (libPrismEmbed.so) that holds
/// it. Found in `/proc/self/maps`: the mapping that contains this image's
/// header (`#dsohandle`).
func imagePath() -> String? {
    let address = UInt(bitPattern: #dsohandle)
    guard let maps = readTextFile("/proc/self/maps") else { return nil }
    for line in maps.split(separator: "\n") {
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        let file = fields.count == 6 ? String(fields[5].drop { $0 == " " }) : ""
        guard file.hasPrefix("/") else { continue }
        let bounds = fields[0].split(separator: "-")
        guard bounds.count == 2, let low = UInt(bounds[0], radix: 16), let high = UInt(bounds[1], radix: 16) else { continue }
        if low <= address && address < high { return file }
    }
    return nil
}

/// A small text file's contents (read until end of file), or nil.
/// The corresponding C functions are `open`, `read` and `close`.
func readTextFile(_ path: String) -> String? {
    let fd = unsafe open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = unsafe chunk.withUnsafeMutableBytes { unsafe read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        bytes += chunk[..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Absolute paths of the regular files in `directory` (empty if unreadable).
/// The corresponding C functions are `opendir`, `readdir` and `closedir`.
func listDirectory(_ directory: String) -> [String] {
    guard let dir = unsafe opendir(directory) else { return [] }
    defer { unsafe closedir(dir) }
    var paths: [String] = []
    while let entry = unsafe readdir(dir) {
        let name = unsafe withUnsafeBytes(of: entry.pointee.d_name) { bytes in
            unsafe String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
        if name != ".", name != "..", regularFileExists(path) { paths.append(path) }
    }
    return paths
}
