#if canImport(Glibc)
import Glibc
#endif

/// Who may have written a library decides whether Prism loads it: loading
/// runs the library's code with the caller's rights, so a file another user
/// could have replaced is refused. The rules (Documentation/Plugins.md,
/// "Where plugins load from"):
/// - the file is not world-writable;
/// - it belongs to the caller or to root;
/// - its folder (as named, and after resolving symbolic links) is not
///   world-writable, unless the sticky bit is set (as on /tmp).
/// `PRISM_ALLOW_UNSAFE_PLUGINS=1` turns the rules off.
enum LoadRules {
    static let override = "PRISM_ALLOW_UNSAFE_PLUGINS"

    /// - Throws: ``PluginError`` `unsafeLocation` naming the file and the rule.
    static func check(_ path: String) throws(PluginError) {
        guard environment(override) != "1" else { return }
        let real = resolved(path) ?? path
        guard let file = status(real) else { return }  // a missing file is reported by the loader
        let fix = "; fix the permissions or ownership, or set \(override)=1 to load it anyway"
        if file.st_mode & S_IWOTH != 0 {
            throw PluginError(.unsafeLocation, plugin: path, reason: "refused: the file is world-writable (chmod o-w)\(fix)")
        }
        let me = getuid()
        if file.st_uid != me && file.st_uid != 0 {
            throw PluginError(.unsafeLocation, plugin: path,
                              reason: "refused: the file belongs to user \(file.st_uid), not to you (\(me)) or root\(fix)")
        }
        for directory in Set([parent(path), parent(real)]) {
            guard let folder = status(directory) else { continue }
            if folder.st_mode & S_IWOTH != 0 && folder.st_mode & S_ISVTX == 0 {
                throw PluginError(.unsafeLocation, plugin: path,
                                  reason: "refused: its folder \(directory) is world-writable without the sticky bit\(fix)")
            }
        }
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func status(_ path: String) -> stat? {
        var info = stat()
        return unsafe stat(path, &info) == 0 ? info : nil
    }

    /// The path with every symbolic link resolved. The corresponding C function is `realpath`.
    static func resolved(_ path: String) -> String? {
        guard let pointer = unsafe realpath(path, nil) else { return nil }
        defer { unsafe free(pointer) }
        return unsafe String(cString: pointer)
    }
}
