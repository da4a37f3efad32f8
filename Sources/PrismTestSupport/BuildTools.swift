import Foundation

/// Paths and processes that tests need: the package root, the build products,
/// and a C compiler to build plugin fixtures at test time.
public enum TestSupport {
    /// The root of the Prism package (found from this file's path).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The SDK's include directory.
    public static var sdkInclude: String { packageRoot.appendingPathComponent("SDK/include").path }

    /// The directory of the build products (where the test binary, the
    /// `prism` executable and the plugin libraries are).
    public static var productsDirectory: URL {
        URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]).deletingLastPathComponent()
    }

    /// The path of a shipped plugin built by SwiftPM, e.g. `product("PrismExactAnswer")`.
    public static func plugin(_ product: String) -> String {
        productsDirectory.appendingPathComponent("lib\(product).so").path
    }

    /// A fresh temporary directory, removed when the process exits is not
    /// guaranteed: tests put only small files there.
    public static func temporaryDirectory(_ name: String = "prism-tests") throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(name)-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The result of a finished process.
    public struct ProcessResult: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs `executable` with `arguments` to completion, capturing its output.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil)
        throws -> ProcessResult
    {
        try run(executable, arguments, environment: environment, interruptWhen: nil)
    }

    /// Runs `executable` and calls `started` with its pid once its standard
    /// error satisfies `trigger` (e.g. to start a competing process).
    public static func runWhile(_ executable: String, _ arguments: [String], when trigger: @escaping (String) -> Bool,
                                do started: @escaping (Int32) -> Void) throws -> ProcessResult {
        try run(executable, arguments, environment: nil, interruptWhen: trigger, signal: 0, started: started)
    }

    /// Runs `executable` and sends it `signal` (default SIGINT, what Ctrl-C
    /// sends) once its standard error so far satisfies `trigger`.
    public static func runInterrupting(_ executable: String, _ arguments: [String], signal: Int32 = SIGINT,
                                       environment: [String: String]? = nil,
                                       when trigger: @escaping (String) -> Bool) throws -> ProcessResult
    {
        try run(executable, arguments, environment: environment, interruptWhen: trigger, signal: signal)
    }

    /// Both pipes are drained to the end (stdout on a background thread),
    /// also after a signal, so a chatty child never blocks on a full pipe.
    private static func run(_ executable: String, _ arguments: [String], environment: [String: String]?,
                            interruptWhen trigger: ((String) -> Bool)?, signal: Int32 = SIGINT,
                            started: ((Int32) -> Void)? = nil) throws -> ProcessResult
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = ReadToEnd(out.fileHandleForReading)
        var errData = Data()
        var pending = trigger
        while true {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }  // end of file: the child closed stderr
            errData.append(chunk)
            if let check = pending, check(String(decoding: errData, as: UTF8.self)) {
                if let started { started(process.processIdentifier) } else { kill(process.processIdentifier, signal) }
                pending = nil
            }
        }
        process.waitUntilExit()
        return ProcessResult(
            status: process.terminationStatus,
            stdout: String(decoding: outData.wait(), as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Compiles C sources into a shared library with `cc -shared -fPIC`,
    /// seeing only `SDK/include`. Returns the library's path.
    /// - Throws: ``CompileError`` with the compiler's output.
    public static func compilePlugin(
        _ sources: [String], name: String, defines: [String] = [], in directory: URL
    ) throws -> String {
        let output = directory.appendingPathComponent("lib\(name).so").path
        let arguments = ["-std=c11", "-shared", "-fPIC", "-fvisibility=hidden", "-O1", "-Wall", "-Wextra",
                         "-Werror", "-pedantic", "-I", sdkInclude]
            + defines.map { "-D\($0)" } + sources + ["-o", output, "-lm"]
        let result = try run("/usr/bin/env", ["cc"] + arguments)
        guard result.status == 0 else { throw CompileError(output: result.stderr + result.stdout) }
        return output
    }

    /// Compiles C sources into an executable with `compiler` (default `cc`)
    /// and the given flags. Returns the executable's path.
    /// - Throws: ``CompileError`` with the compiler's output.
    public static func compileProgram(
        _ sources: [String], name: String, compiler: String = "cc", flags: [String], in directory: URL
    ) throws -> String {
        let output = directory.appendingPathComponent(name).path
        let result = try run("/usr/bin/env", [compiler] + flags + sources + ["-o", output, "-lm", "-pthread"])
        guard result.status == 0 else { throw CompileError(output: result.stderr + result.stdout) }
        return output
    }

    /// A fixture source under `Tests/Fixtures`.
    public static func fixture(_ name: String) -> String {
        packageRoot.appendingPathComponent("Tests/Fixtures/\(name)").path
    }
}

public struct CompileError: Error, CustomStringConvertible {
    public var output: String
    public var description: String { "cc failed:\n\(output)" }
}

/// Reads a file handle to its end on a background thread.
final class ReadToEnd: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}

extension TestSupport {
    /// The processes whose parent is `parent` (from /proc).
    public static func children(of parent: pid_t) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }.filter { pid in
            guard let fields = statFields(pid) else { return false }
            return fields.count > 2 && Int32(fields[1]) == parent
        }
    }

    /// A process's command line, its arguments separated by NUL ("" once it is gone).
    public static func commandLine(_ pid: pid_t) -> String {
        String(decoding: FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data(), as: UTF8.self)
    }

    /// Whether `pid` is still running (a zombie has ended).
    public static func isRunning(_ pid: pid_t) -> Bool {
        guard let fields = statFields(pid) else { return false }
        return fields.first != "Z"
    }

    /// The fields of /proc/PID/stat after the command name: state, parent, ...
    private static func statFields(_ pid: pid_t) -> [Substring]? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }
}
