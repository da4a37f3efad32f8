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
