// The plugin's end of a PyTorch worker process (worker/prism_torch_worker.py):
// started with a socket on descriptor 3 and a shared-memory file on 4; each
// backend call is a frame (4-byte length + JSON) whose arrays travel in the
// shared memory. The worker's output goes to a log file whose tail explains a
// worker that died.
import CPrism
import CPrismIsolation
import Foundation
import PluginKit

/// One worker process and its channel.
final class TorchWorker: PluginObject {
    let lastError = ErrorText()
    private var pid: pid_t = 0
    private var socket: Int32 = -1
    private var region: prism_iso_region
    private let logPath: String
    private(set) var info: [String: Any] = [:]
    /// The decoding batch's row count (decode_step's token count).
    var decodingRows = 0

    private let python: String
    private let script: String
    private let config: [String: Any]

    /// Checks the config and finds the Python side; the worker itself starts
    /// on the first call (so creating an instance is cheap).
    /// - Throws: ``ConfigError`` when the config is not JSON, the Python
    ///   environment or the worker script is missing, or `model` is not a folder.
    init(config text: String) throws {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            throw ConfigError("the config is not a JSON object: \(text)")
        }
        if let model = object["model"] as? String {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ConfigError("model: '\(model)' is not a directory (a local Hugging Face model folder)")
            }
        }
        config = object
        python = try Self.python(object["python"] as? String)
        script = try Self.workerScript()
        logPath = FileManager.default.temporaryDirectory.appendingPathComponent("prism-torch-\(getpid())-\(UUID().uuidString.prefix(8)).log").path
        region = prism_iso_region(fd: -1, base: nil, size: 0)
    }

    /// Starts the worker and loads the model, once.
    private func start() throws {
        guard !started else { return }
        started = true
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        var pair: [Int32] = [-1, -1]
        let memory = prism_iso_memfd()
        region = prism_iso_region(fd: memory, base: nil, size: 0)
        guard log >= 0, memory >= 0, pair.withUnsafeMutableBufferPointer({ prism_iso_socketpair($0.baseAddress) }) == 0 else {
            throw PluginFailure(status: PRISM_E_IO, message: "cannot create the worker's channel: \(String(cString: strerror(errno)))")
        }
        defer { close(log) }
        let arguments = [python, "-u", script]
        var cArguments = arguments.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        let spawned = prism_iso_spawn_logged(python, &cArguments, pair[1], memory, log, &pid)
        close(pair[1])
        guard spawned == 0 else {
            close(pair[0])
            pid = 0
            throw PluginFailure(status: PRISM_E_IO, message: "cannot start \(python): \(String(cString: strerror(-spawned)))")
        }
        socket = pair[0]
        let answer = try exchange("init", ["config": config]).json
        guard let info = answer["info"] as? [String: Any] else {
            throw PluginFailure(status: PRISM_E_INTERNAL, message: "init: the worker answered without model facts")
        }
        self.info = info
    }

    private var started = false

    /// The model's facts (vocabulary, special tokens, length, size), from the worker.
    func facts() throws -> [String: Any] {
        try start()
        return info
    }

    deinit {
        if socket >= 0 { close(socket) }
        if pid != 0 {  // the worker sees the end of its socket and exits
            var signal: Int32 = 0, status: Int32 = 0
            prism_iso_end(pid, 5000, &signal, &status)
        }
        prism_iso_region_unmap(&region)
        if region.fd >= 0 { close(region.fd) }
        unlink(logPath)
    }

    /// The Python interpreter: the config's `python`, else `PRISM_PYTHON`,
    /// else `.build-python/venv/bin/python` in a folder above the worker
    /// script (the build folder's copy sits inside the checkout).
    static func python(_ configured: String?) throws -> String {
        if let configured, !configured.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: configured) else {
                throw ConfigError("python: \(configured) is not an executable")
            }
            return configured
        }
        if let environment = ProcessInfo.processInfo.environment["PRISM_PYTHON"], !environment.isEmpty { return environment }
        var folder = URL(fileURLWithPath: try workerScript()).deletingLastPathComponent()
        while folder.path != "/" {
            let candidate = folder.appendingPathComponent(".build-python/venv/bin/python").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            folder = folder.deletingLastPathComponent()
        }
        throw ConfigError("the torch backend needs its Python environment: run scripts/python-env (or set python, or PRISM_PYTHON)")
    }

    /// The worker script: `PRISM_TORCH_WORKER`, else the copy SwiftPM puts
    /// beside the plugin, else the source tree's.
    static func workerScript() throws -> String {
        if let environment = ProcessInfo.processInfo.environment["PRISM_TORCH_WORKER"], !environment.isEmpty { return environment }
        if let bundled = Bundle.module.path(forResource: "prism_torch_worker", ofType: "py") { return bundled }
        throw ConfigError("the torch worker script prism_torch_worker.py is missing next to the plugin (set PRISM_TORCH_WORKER)")
    }

    /// The last lines the worker printed (its traceback when it died).
    func logTail(_ lines: Int = 12) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        let tail = text.split(separator: "\n", omittingEmptySubsequences: true).filter { !$0.contains("\r") }.suffix(lines)
        return tail.isEmpty ? "(it printed nothing)" : tail.joined(separator: "\n")
    }

    struct Answer {
        var json: [String: Any]
        var arrays: [String: (offset: Int, count: Int)]
    }

    /// One call: `fields` as JSON, `floats`/`ints` into the shared memory.
    /// - Throws: ``PluginFailure`` with the worker's message, or naming the
    ///   call and the tail of the worker's output when it died.
    func call(_ op: String, _ fields: [String: Any] = [:], floats: [String: [Float]] = [:],
              ints: [String: [Int32]] = [:]) throws -> Answer {
        try start()
        return try exchange(op, fields, floats: floats, ints: ints)
    }

    private func exchange(_ op: String, _ fields: [String: Any] = [:], floats: [String: [Float]] = [:],
                          ints: [String: [Int32]] = [:]) throws -> Answer {
        guard pid != 0 else { throw PluginFailure(status: PRISM_E_STATE, message: "\(op): the torch worker is gone") }
        var request = fields
        request["op"] = op
        var specs: [String: Any] = [:]
        var offset = 0
        func place<T>(_ name: String, _ values: [T], _ dtype: String) throws {
            offset = (offset + 15) & ~15
            let size = values.count * MemoryLayout<T>.stride
            let status = prism_iso_region_reserve(&region, offset + size)
            guard status == 0 else { throw PluginFailure(status: PRISM_E_OUT_OF_MEMORY, message: "\(op): shared memory of \(offset + size) bytes") }
            if size > 0 { values.withUnsafeBytes { UnsafeMutableRawPointer(region.base! + offset).copyMemory(from: $0.baseAddress!, byteCount: size) } }
            specs[name] = ["offset": offset, "count": values.count, "dtype": dtype]
            offset += size
        }
        for (name, values) in floats { try place(name, values, "f32") }
        for (name, values) in ints { try place(name, values, "i32") }
        request["arrays"] = specs
        let body = Array(try JSONSerialization.data(withJSONObject: request))
        guard body.withUnsafeBytes({ prism_iso_send(socket, $0.baseAddress, UInt32($0.count)) }) == 0 else { throw died(op) }
        var header = [UInt8](repeating: 0, count: 4)
        guard header.withUnsafeMutableBytes({ prism_iso_read(socket, $0.baseAddress, 4, -1) }) == 0 else { throw died(op) }
        let length = Int(header[0]) | Int(header[1]) << 8 | Int(header[2]) << 16 | Int(header[3]) << 24
        var reply = [UInt8](repeating: 0, count: length)
        guard reply.withUnsafeMutableBytes({ prism_iso_read(socket, $0.baseAddress, length, 60_000) }) == 0 else { throw died(op) }
        guard let json = (try? JSONSerialization.jsonObject(with: Data(reply))) as? [String: Any] else {
            throw PluginFailure(status: PRISM_E_INTERNAL, message: "\(op): the worker answered something that is not JSON")
        }
        guard json["ok"] as? Bool == true else {
            throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: json["error"] as? String ?? "\(op) failed")
        }
        var arrays: [String: (offset: Int, count: Int)] = [:]
        for (name, spec) in json["arrays"] as? [String: [String: Any]] ?? [:] {
            arrays[name] = ((spec["offset"] as? Int) ?? 0, (spec["count"] as? Int) ?? 0)
        }
        return Answer(json: json, arrays: arrays)
    }

    /// Copies array `name` of an answer (float32) into `out`.
    func copy(_ answer: Answer, _ name: String, into out: UnsafeMutablePointer<Float>, count: Int, _ op: String) throws {
        guard let spec = answer.arrays[name], spec.count == count else {
            throw PluginFailure(status: PRISM_E_INTERNAL,
                                message: "\(op): the worker's \(name) has \(answer.arrays[name]?.count ?? 0) values, expected \(count)")
        }
        guard prism_iso_region_refresh(&region) == 0, spec.offset + 4 * count <= region.size, let base = region.base else {
            throw PluginFailure(status: PRISM_E_INTERNAL, message: "\(op): the worker's \(name) lies outside the shared memory")
        }
        UnsafeMutableRawPointer(out).copyMemory(from: base + spec.offset, byteCount: 4 * count)
    }

    /// The error for a worker that stopped answering: its exit and its last words.
    private func died(_ op: String) -> PluginFailure {
        var signal: Int32 = 0, status: Int32 = 0
        prism_iso_end(pid, 2000, &signal, &status)
        pid = 0
        let how = signal != 0 ? "was killed by signal \(signal)" : "exited with status \(status)"
        return PluginFailure(status: PRISM_E_IO, message: "\(op): the torch worker \(how); its last output:\n\(logTail())")
    }
}

