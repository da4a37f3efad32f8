import Foundation

/// Tests/Servers/scripted_chat_server.py, started for a test: a real HTTP
/// server on 127.0.0.1 speaking the OpenAI chat-completions wire format with
/// scripted answers. Started when made (its port is read from its first
/// line of output, so no test waits on a clock); stopped by ``stop()`` or
/// when the value goes away (its stdin is closed and it is reaped).
public final class ScriptedServer {
    public let port: Int
    private let process: Process
    private let input: Pipe

    /// - Parameter environment: extra variables (EXPECTED_AUTHORIZATION, SLOW_SECONDS).
    public init(environment: [String: String] = [:]) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", TestSupport.packageRoot.appendingPathComponent("Tests/Servers/scripted_chat_server.py").path]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("port "), let port = Int(text.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw StartFailure(output: text)
        }
        self.port = port
    }

    public struct StartFailure: Error, CustomStringConvertible {
        public let output: String
        public var description: String { "the scripted server did not start: \(output)" }
    }

    /// The base URL of its API, e.g. http://127.0.0.1:40123/v1.
    public var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    /// GET /stats: requests per case, the Authorization headers seen, and
    /// the arithmetic verdicts given (the steps asked about, the answer).
    public func stats() throws -> (requests: [String: Int], authorization: [String], verdicts: [(steps: [String], verdict: Int)]) {
        let result = try TestSupport.run("/usr/bin/env", ["python3", "-c", """
            import json, urllib.request
            print(urllib.request.urlopen("http://127.0.0.1:\(port)/stats", timeout=10).read().decode())
            """])
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
        let verdicts = (object["verdicts"] as? [[String: Any]] ?? []).map {
            (steps: $0["steps"] as? [String] ?? [], verdict: $0["verdict"] as? Int ?? -2)
        }
        return (object["requests"] as? [String: Int] ?? [:], object["authorization"] as? [String] ?? [], verdicts)
    }

    public func stop() {
        guard process.isRunning else { return }
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    deinit { stop() }
}
