import ArgumentParser
import Foundation
import PrismHost

struct PluginsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins",
        abstract: "List, inspect and check plugin libraries.",
        subcommands: [List.self, Inspect.self, Check.self]
    )
}

extension PluginsCommand {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the plugins in directories (default: the plugin search path).")

        @Argument(help: "Directories to scan for *.so files.")
        var directories: [String] = []

        func run() throws {
            let directories = directories.isEmpty ? PluginDiscovery.searchDirectories() : directories
            var found = 0
            for directory in directories {
                for path in PluginDiscovery.libraries(in: directory) {
                    do {
                        let library = try PluginLibrary.load(path)
                        found += 1
                        print("\(library.id)\t\(library.version)\tABI \(library.abiMajor).\(library.abiMinor)\t\(path)")
                    } catch where error.code == .noEntrySymbol {
                        continue  // an ordinary shared library, not a plugin
                    } catch {
                        printError("skipped \(error)")
                    }
                }
            }
            if found == 0 {
                printError("no plugins found in \(directories.joined(separator: ", "))")
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a plugin's id, name, version, ABI version and interfaces.")

        @Argument(help: "Path to the plugin library (.so).")
        var path: String

        @Option(help: "JSON config for creating the instance that reports its interfaces.")
        var config = "{}"

        func run() throws {
            let library = try loadOrExit(path)
            print("path:        \(library.path)")
            print("id:          \(library.id)")
            print("name:        \(library.name)")
            print("version:     \(library.version)")
            print("abi:         \(library.abiMajor).\(library.abiMinor)")
            print("description: \(library.summary)")
            do {
                let instance = try library.instantiate(config: config)
                print("interfaces:  \(instance.interfaces.joined(separator: ", "))")
            } catch {
                printError("\(error)")
                throw ExitCode(1)
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the conformance suite on plugins (default: every shipped plugin).",
            discussion: """
                Exercises every interface a plugin claims: empty batches, long and non-ASCII UTF-8, \
                thousands of calls, repeated create/destroy and NaN inputs, checking each output \
                against the ABI contract. Prints one line per check; exits 1 if any check fails.
                """)

        @Argument(help: "Paths to plugin libraries (.so).")
        var paths: [String] = []

        @Option(help: "JSON config for creating instances.")
        var config = "{}"

        @Option(help: "How many calls the repeated-call checks make.")
        var calls = 2000

        func run() throws {
            let paths = paths.isEmpty
                ? PluginDiscovery.searchDirectories().prefix(1).flatMap(PluginDiscovery.libraries(in:))
                : paths
            guard !paths.isEmpty else {
                printError("no plugins to check; pass a path to a .so")
                throw ExitCode(1)
            }
            var failures = 0
            var checks = 0
            for path in paths {
                print("\(path)")
                ConformanceSuite(path: path, config: config, callCount: calls).run { result in
                    checks += 1
                    if !result.passed { failures += 1 }
                    print("  \(result.passed ? "PASS" : "FAIL")  \(result.name)  \(result.detail)")
                }
            }
            print("\(checks - failures) passed, \(failures) failed")
            if failures > 0 { throw ExitCode(1) }
        }
    }
}

/// Loads a plugin or prints the one-line error and exits 1.
func loadOrExit(_ path: String) throws -> PluginLibrary {
    do {
        return try PluginLibrary.load(path)
    } catch {
        printError("\(error)")
        throw ExitCode(1)
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
}
