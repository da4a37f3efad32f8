#if canImport(Glibc)
import Glibc
#endif

/// Where Prism looks for plugin libraries, in order: the directory of the
/// library that holds Prism when it is embedded (libPrismEmbed.so), the
/// directory of the running executable (where `swift build` puts the
/// shipped plugins), then each directory of `PRISM_PLUGIN_PATH`
/// (colon-separated).
public enum PluginDiscovery {
    /// The default search directories.
    public static func searchDirectories() -> [String] {
        var directories: [String] = []
        for file in [imagePath(), executablePath()].compactMap({ $0 }) {
            let directory = String(file[..<(file.lastIndex(of: "/") ?? file.endIndex)])
            if !directories.contains(directory) { directories.append(directory) }
        }
        if let extra = environment("PRISM_PLUGIN_PATH") {
            directories += extra.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        }
        return directories
    }

    /// Shared libraries (`*.so`) in `directory`, sorted by path.
    public static func libraries(in directory: String) -> [String] {
        listDirectory(absolutePath(directory)).filter { $0.hasSuffix(".so") }.sorted()
    }

    /// The first library named `lib<product>.so` in the search directories.
    /// - Throws: ``PluginError`` `unsafeLocation` when `PRISM_PLUGIN_PATH`
    ///   holds a relative entry (such as `.`): what it finds would depend on
    ///   the working directory.
    public static func find(product: String) throws(PluginError) -> String? {
        if let extra = environment("PRISM_PLUGIN_PATH"),
           let relative = extra.split(separator: ":", omittingEmptySubsequences: false).first(where: { !$0.isEmpty && !$0.hasPrefix("/") }) {
            throw PluginError(
                .unsafeLocation, plugin: "PRISM_PLUGIN_PATH",
                reason: "refused: the entry '\(relative)' is not an absolute directory (it would load whatever the working directory holds); "
                    + "use absolute paths")
        }
        for directory in searchDirectories() {
            let path = directory + "/lib\(product).so"
            if regularFileExists(path) { return path }
        }
        return nil
    }
}
