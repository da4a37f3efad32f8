import ArgumentParser
import Foundation
import PrismHost
import PrismIsolation

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

        @Flag(help: "Load each library into this process (faster; a library whose constructors crash or hang takes prism with it).")
        var inProcess = false

        @Option(help: "Seconds each library may take to load in its runner process.")
        var timeout = 20.0

        func run() throws {
            let directories = directories.isEmpty ? PluginDiscovery.searchDirectories() : directories
            var found = 0
            for directory in directories {
                for path in PluginDiscovery.libraries(in: directory) {
                    if !inProcess {
                        let outcome = Runner.run(["inspect", path], timeout: timeout) { _ in }
                        guard outcome.status == 0,
                              let object = try? JSONSerialization.jsonObject(with: Data(outcome.output.utf8)) as? [String: Any],
                              let id = object["id"] as? String
                        else {
                            let answer = (try? JSONSerialization.jsonObject(with: Data(outcome.output.utf8))) as? [String: Any]
                            if answer?["code"] as? String == PluginError.Code.noEntrySymbol.name { continue }
                            printError("skipped \(path): \(answer?["error"] as? String ?? outcome.problem ?? "no answer")")
                            continue
                        }
                        found += 1
                        print("\(id)\t\(object["version"] as? String ?? "")\tABI \(object["abi"] as? String ?? "")\t\(path)")
                        continue
                    }
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
                against the ABI contract. Prints one line per check; exits 1 if any check fails. \
                Without paths, a plugin that cannot be created with --config (the LLM judge needs an \
                endpoint) is listed as SKIP with the reason; check it by path with a --config.
                """)

        @Argument(help: "Paths to plugin libraries (.so).")
        var paths: [String] = []

        @Option(help: "JSON config for creating instances.")
        var config = "{}"

        @Option(help: "How many calls the repeated-call checks make.")
        var calls = 2000

        @Flag(help: "Run the checks in this process (a plugin that crashes or hangs takes prism with it).")
        var inProcess = false

        @Option(help: "Seconds the checks of one plugin may take in their runner process before it is killed.")
        var timeout = 300.0

        /// Why the default run leaves `path` out (asked in a runner process), or
        /// nil to check it: an ordinary shared library (no plugin entry), or a
        /// plugin that cannot be created without configuration (an endpoint).
        static func reasonToSkip(_ path: String, config: String) -> String? {
            let outcome = Runner.run(["inspect", path, config], timeout: 20) { _ in }
            let answer = (try? JSONSerialization.jsonObject(with: Data(outcome.output.utf8))) as? [String: Any]
            if answer?["code"] as? String == PluginError.Code.noEntrySymbol.name { return "not a plugin" }
            if answer?["code"] as? String == PluginError.Code.createFailed.name,
               let message = answer?["error"] as? String, message.contains("(config error)") {
                return "needs a config (\(message.components(separatedBy: "(config error): ").last ?? message)); "
                    + "check it with: prism plugins check \(path) --config '{...}'"
            }
            return nil
        }

        func run() throws {
            // By default every plugin beside prism that can be created with --config;
            // ordinary shared libraries there (libPrismEmbed.so) and plugins that need
            // configuring first (the LLM judge's endpoint) are named and skipped.
            let paths = paths.isEmpty
                ? PluginDiscovery.searchDirectories().prefix(1).flatMap(PluginDiscovery.libraries(in:)).filter { path in
                    guard let reason = Self.reasonToSkip(path, config: config) else { return true }
                    if reason != "not a plugin" { say("\(path)\n  SKIP  \(reason)") }
                    return false
                }
                : paths
            guard !paths.isEmpty else {
                printError("no plugins to check; pass a path to a .so")
                throw ExitCode(1)
            }
            var failures = 0
            var checks = 0
            for path in paths {
                say("\(path)")
                guard inProcess else {
                    var last = "load"
                    let outcome = Runner.run(["check", path, config, "\(calls)"], timeout: timeout) { line in
                        let fields = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
                        guard fields.count == 3 else { return }
                        checks += 1
                        if fields[0] != "PASS" { failures += 1 }
                        last = fields[1]
                        say("  \(fields[0])  \(fields[1])  \(fields[2])")
                    }
                    if let problem = outcome.problem {
                        checks += 1
                        failures += 1
                        say("  FAIL  isolation  the plugin \(problem) after the check '\(last)'; the checks after it did not run")
                    }
                    continue
                }
                ConformanceSuite(path: path, config: config, callCount: calls).run { result in
                    checks += 1
                    if !result.passed { failures += 1 }
                    say("  \(result.passed ? "PASS" : "FAIL")  \(result.name)  \(result.detail)")
                }
            }
            say("\(checks - failures) passed, \(failures) failed")
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

/// A line on standard output, written at once (not held in a buffer a
/// crash would lose).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// `prism-plugin-runner` as a subprocess for `plugins list` and `plugins
/// check`: its output relayed line by line, a deadline, and what ended it.
enum Runner {
    struct Outcome {
        var status: Int32
        /// Everything it printed.
        var output: String
        /// "crashed the runner (signal 11, SIGSEGV)", "did not finish within 20 s", or nil.
        var problem: String?
    }

    static func run(_ arguments: [String], timeout: Double, line: (String) -> Void) -> Outcome {
        guard let runner = RunnerChannel.runnerPath() else {
            return Outcome(status: -1, output: "", problem: "could not be checked: prism-plugin-runner is not next to prism")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: runner)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        if environment["SWIFT_BACKTRACE"] == nil { environment["SWIFT_BACKTRACE"] = "enable=no" }  // one line, not a dump
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.standardError
        do { try process.run() } catch {
            return Outcome(status: -1, output: "", problem: "could not be checked: \(runner) did not start (\(error))")
        }
        let lock = NSLock()
        var timedOut = false
        let watchdog = DispatchWorkItem {
            lock.withLock { timedOut = true }
            process.terminate()
            kill(process.processIdentifier, SIGKILL)
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        var output = Data()
        var pending = Data()
        let handle = pipe.fileHandleForReading
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            output.append(chunk)
            pending.append(chunk)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                line(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                pending = Data(pending[(newline + 1)...])
            }
        }
        process.waitUntilExit()
        watchdog.cancel()
        let text = String(decoding: output, as: UTF8.self)
        if lock.withLock({ timedOut }) {
            return Outcome(status: -1, output: text, problem: String(format: "did not finish within %g s (--timeout) and was killed", timeout))
        }
        if process.terminationReason == .uncaughtSignal {
            let signal = process.terminationStatus
            let name = signal == SIGSEGV ? "SIGSEGV" : signal == SIGABRT ? "SIGABRT" : signal == SIGBUS ? "SIGBUS" : "signal \(signal)"
            return Outcome(status: -1, output: text, problem: "crashed its runner process (\(name))")
        }
        return Outcome(status: process.terminationStatus, output: text, problem: nil)
    }
}
