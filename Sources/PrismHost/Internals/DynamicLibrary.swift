#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A shared library opened with `dlopen(path, RTLD_NOW | RTLD_LOCAL)`.
///
/// Never closed: Swift runtime caches may keep pointers into a plugin image,
/// so unloading is unsafe (see Documentation/ABI.md).
@unsafe struct DynamicLibrary: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    /// Opens `path` (which must be absolute).
    /// - Throws: the `dlerror()` text. The corresponding C function is `dlopen`.
    static func open(absolutePath path: String) throws(DynamicLibraryError) -> DynamicLibrary {
        _ = unsafe dlerror()
        guard let handle = unsafe dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw DynamicLibraryError(message: lastDLError() ?? "dlopen failed")
        }
        return unsafe DynamicLibrary(handle: handle)
    }

    /// The address of `name`, or nil. The corresponding C function is `dlsym`.
    func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        unsafe dlsym(handle, name)
    }
}

struct DynamicLibraryError: Error {
    let message: String
}

private func lastDLError() -> String? {
    guard let message = unsafe dlerror() else { return nil }
    return unsafe String(cString: message)
}

/// Whether a regular file exists at `path`. The corresponding C function is `stat`.
func regularFileExists(_ path: String) -> Bool {
    var info = stat()
    guard unsafe stat(path, &info) == 0 else { return false }
    return (info.st_mode & S_IFMT) == S_IFREG
}

/// `path` made absolute against the working directory (symbolic links kept).
func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard unsafe getcwd(&buffer, buffer.count) != nil else { return path }
    let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return cwd == "/" ? "/" + path : cwd + "/" + path
}
