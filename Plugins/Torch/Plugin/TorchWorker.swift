// The plugin's end of the PyTorch worker processes (worker/prism_torch_worker.py):
// one per torch.distributed rank, each started with a socket on descriptor 3
// and a shared-memory file on 4. Each backend call is a frame (4-byte length
// + JSON) whose arrays travel in the shared memory. A batch's rows are split
// between the ranks in contiguous slices; the ranks all-reduce their
// gradients in optimizer_step. Each worker's output goes to a log file whose
// tail explains a worker that died.
import CPrism
import CPrismIsolation
import Foundation
import PluginKit

/// One worker process and its channel.
final class Rank {
    let index: Int
    private(set) var pid: pid_t = 0
    private(set) var socket: Int32 = -1
    private var region = prism_iso_region(fd: -1, base: nil, size: 0)
    let logPath: String

    init(index: Int, logPath: String) {
        self.index = index
        self.logPath = logPath
    }

    /// Starts `arguments[0]` with the channel on descriptors 3 and 4.
    func start(_ arguments: [String]) throws {
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        var pair: [Int32] = [-1, -1]
        let memory = prism_iso_memfd()
        region = prism_iso_region(fd: memory, base: nil, size: 0)
        guard log >= 0, memory >= 0, pair.withUnsafeMutableBufferPointer({ prism_iso_socketpair($0.baseAddress) }) == 0 else {
            throw PluginFailure(status: PRISM_E_IO, message: "cannot create the worker's channel: \(String(cString: strerror(errno)))")
        }
        defer { close(log) }
        var cArguments = arguments.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        let spawned = prism_iso_spawn_logged(arguments[0], &cArguments, pair[1], memory, log, &pid)
        close(pair[1])
        guard spawned == 0 else {
            close(pair[0])
            pid = 0
            throw PluginFailure(status: PRISM_E_IO, message: "cannot start \(arguments[0]): \(String(cString: strerror(-spawned)))")
        }
        socket = pair[0]
    }

    deinit {
        end(grace: 5000)
        prism_iso_region_unmap(&region)
        if region.fd >= 0 { close(region.fd) }
        unlink(logPath)
    }

    /// Closes the channel (the worker exits when it sees that) and reaps the
    /// process, killing it after `grace` ms. Returns how it ended.
    @discardableResult
    func end(grace: Int32) -> String {
        if socket >= 0 { close(socket) }
        socket = -1
        guard pid != 0 else { return "had ended" }
        var signal: Int32 = 0, status: Int32 = 0
        prism_iso_end(pid, grace, &signal, &status)
        pid = 0
        return signal != 0 ? "was killed by signal \(signal)" : "exited with status \(status)"
    }

    /// Sends one request: `fields` as JSON, `floats`/`ints` into the shared memory.
    /// - Returns: false when the worker is gone.
    func send(_ op: String, _ fields: [String: Any], floats: [String: [Float]], ints: [String: [Int32]]) throws -> Bool {
        guard pid != 0 else { return false }
        var request = fields
        request["op"] = op
        var specs: [String: Any] = [:]
        var offset = 0
        func place<T>(_ name: String, _ values: [T], _ dtype: String) throws {
            offset = (offset + 15) & ~15
            let size = values.count * MemoryLayout<T>.stride
            guard prism_iso_region_reserve(&region, offset + size) == 0 else {
                throw PluginFailure(status: PRISM_E_OUT_OF_MEMORY, message: "\(op): shared memory of \(offset + size) bytes")
            }
            if size > 0 { values.withUnsafeBytes { UnsafeMutableRawPointer(region.base! + offset).copyMemory(from: $0.baseAddress!, byteCount: size) } }
            specs[name] = ["offset": offset, "count": values.count, "dtype": dtype]
            offset += size
        }
        for (name, values) in floats { try place(name, values, "f32") }
        for (name, values) in ints { try place(name, values, "i32") }
        request["arrays"] = specs
        let body = Array(try JSONSerialization.data(withJSONObject: request))
        return body.withUnsafeBytes({ prism_iso_send(socket, $0.baseAddress, UInt32($0.count)) }) == 0
    }

    enum Received {
        case answer([String: Any])
        case gone
        case late
    }

    /// Reads one answer, waiting at most `timeout` ms for it to begin (-1 = forever).
    func receive(timeout: Int32) -> Received {
        var header = [UInt8](repeating: 0, count: 4)
        switch header.withUnsafeMutableBytes({ prism_iso_read(socket, $0.baseAddress, 4, timeout) }) {
        case 0: break
        case -ETIMEDOUT: return .late
        default: return .gone
        }
        let length = Int(header[0]) | Int(header[1]) << 8 | Int(header[2]) << 16 | Int(header[3]) << 24
        var reply = [UInt8](repeating: 0, count: length)
        guard reply.withUnsafeMutableBytes({ prism_iso_read(socket, $0.baseAddress, length, 60_000) }) == 0,
              let json = (try? JSONSerialization.jsonObject(with: Data(reply))) as? [String: Any]
        else { return .gone }
        return .answer(json)
    }

    /// Copies array `name` of an answer (float32, exactly `count` values) into `out`.
    func copy(_ json: [String: Any], _ name: String, into out: UnsafeMutablePointer<Float>, count: Int, _ op: String) throws {
        guard let spec = (json["arrays"] as? [String: Any])?[name] as? [String: Any],
              let offset = spec["offset"] as? Int, let found = spec["count"] as? Int, offset >= 0
        else { throw PluginFailure(status: PRISM_E_INTERNAL, message: "\(op): the worker's answer has no \(name)") }
        guard found == count else {
            throw PluginFailure(status: PRISM_E_INTERNAL, message: "\(op): the worker's \(name) has \(found) values, expected \(count)")
        }
        guard prism_iso_region_refresh(&region) == 0, offset + 4 * count <= region.size else {
            throw PluginFailure(status: PRISM_E_INTERNAL, message: "\(op): the worker's \(name) lies outside the shared memory")
        }
        guard count > 0, let base = region.base else { return }
        UnsafeMutableRawPointer(out).copyMemory(from: base + offset, byteCount: 4 * count)
    }

    /// The last lines the worker printed (its traceback when it died).
    func logTail(_ lines: Int = 12) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        let tail = text.split(separator: "\n", omittingEmptySubsequences: true).filter { !$0.contains("\r") }.suffix(lines)
        return tail.isEmpty ? "(it printed nothing)" : tail.joined(separator: "\n")
    }
}

/// The worker processes of one backend instance.
final class TorchWorker: PluginObject {
    let lastError = ErrorText()
    private(set) var info: [String: Any] = [:]
    /// The decoding batch's rows, split between the ranks.
    var decodingSlices: [Range<Int>] = []
    /// Rows of the decoding not yet finished by decode_step_rows.
    var decodingGoing: [Bool] = []
    /// The batch logprobs_keep ran on (its slices and stride), until
    /// backward_kept or any other call (the workers then drop the graph).
    var kept: (slices: [Range<Int>], stride: Int)?

    private let python: String
    private let script: String
    private let config: [String: Any]
    private let worldSize: Int
    /// The deadline of one call in ms (-1 = none).
    private let timeout: Int32
    private var ranks: [Rank] = []
    private var started = false
    /// Why the workers could not start (every later call repeats it).
    private var startFailure: PluginFailure?

    /// The config keys (Documentation/Backends.md).
    static let keys = ["model", "package", "gguf_file", "tiny", "native", "lora", "chat_template", "system_prompt",
                       "gradient_checkpointing", "share_prefixes", "world_size", "threads", "seed", "timeout_s", "python"]

    /// Checks the config and finds the Python side; the workers start on the
    /// first call (so creating an instance is cheap).
    /// - Throws: ``ConfigError`` when the config is not JSON, the Python
    ///   environment or the worker script is missing, `model` is not a
    ///   folder, or `world_size`/`timeout_s` is out of range.
    init(config text: String) throws {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            throw ConfigError("the config is not a JSON object: \(text)")
        }
        if let unknown = object.keys.sorted().first(where: { !Self.keys.contains($0) }) {
            throw ConfigError("config: unknown key '\(unknown)' (expected one of: \(Self.keys.joined(separator: ", ")))")
        }
        if let model = object["model"] as? String {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ConfigError("model: '\(model)' is not a directory (a local Hugging Face model folder)")
            }
        }
        let world = object["world_size"] ?? 1
        guard let worldSize = world as? Int, (1...64).contains(worldSize) else {
            throw ConfigError("world_size: expected an integer in 1...64, got \(world)")
        }
        let seconds = object["timeout_s"] ?? 0
        guard let timeout = (seconds as? NSNumber)?.doubleValue, timeout >= 0, timeout <= 86_400 else {
            throw ConfigError("timeout_s: expected a number of seconds in 0...86400 (0 = no deadline), got \(seconds)")
        }
        config = object
        self.worldSize = worldSize
        self.timeout = timeout == 0 ? -1 : Int32(max(1, timeout * 1000))
        python = try Self.python(object["python"] as? String)
        script = try Self.workerScript()
    }

    /// Starts the workers, joins them into one process group and loads the model, once.
    private func start() throws {
        guard !started else {
            if let startFailure { throw startFailure }
            return
        }
        started = true
        do { try launch() } catch let failure as PluginFailure {
            startFailure = failure
            for rank in ranks { rank.end(grace: 0) }
            throw failure
        }
    }

    private func launch() throws {
        let stem = FileManager.default.temporaryDirectory.appendingPathComponent("prism-torch-\(getpid())-\(UUID().uuidString.prefix(8))").path
        ranks = (0..<worldSize).map { Rank(index: $0, logPath: "\(stem)-rank\($0).log") }
        for rank in ranks { try rank.start([python, "-u", script]) }
        var world: [String: Any] = ["size": worldSize]
        if worldSize > 1 {
            // Rank 0 opens the rendezvous store on a free port of 127.0.0.1; then all join.
            world["port"] = try exchange("rendezvous", on: [ranks[0]], [[:]])[0]["port"] as? Int ?? 0
        }
        let answers = try exchange("init", on: ranks, ranks.map { ["config": config, "world": world.merging(["rank": $0.index]) { $1 }] })
        guard let info = answers[0]["info"] as? [String: Any] else {
            throw PluginFailure(status: PRISM_E_INTERNAL, message: "init: the worker answered without model facts")
        }
        self.info = info
    }

    /// The model's facts (vocabulary, special tokens, length, size), from rank 0.
    func facts() throws -> [String: Any] {
        try start()
        return info
    }

    deinit {
        // Every rank sees its socket close and exits; ranks waiting for one
        // another in a collective are killed after the grace period.
        for rank in ranks { rank.end(grace: 5000) }
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

    /// One call on rank 0 only (tokenizer calls, save).
    func call(_ op: String, _ fields: [String: Any] = [:]) throws -> [String: Any] {
        kept = nil  // the workers discard it on any other call
        try start()
        return try exchange(op, on: [ranks[0]], [fields])[0]
    }

    /// The same call on every rank (optimizer step, reference snapshot, load); rank 0's answer.
    func everywhere(_ op: String, _ fields: [String: Any] = [:]) throws -> [String: Any] {
        kept = nil  // the workers discard it on any other call
        try start()
        return try exchange(op, on: ranks, Array(repeating: fields, count: ranks.count))[0]
    }

    /// The rows of a batch of `rows`, split between the ranks.
    func slices(_ rows: Int) -> [Range<Int>] {
        (0..<worldSize).map { r in (r * rows / worldSize)..<((r + 1) * rows / worldSize) }
    }

    /// A batch call: rank r gets the rows `slices[r]` of every array (each
    /// `width` values a row); each rank's float array `output.name` (`output.width`
    /// values a row) is copied straight from its shared memory to its rows of `output.into`.
    func rows(_ op: String, _ fields: [String: Any], slices: [Range<Int>], width: [String: Int],
              floats: [String: [Float]] = [:], ints: [String: [Int32]] = [:],
              output: (name: String, width: Int, into: UnsafeMutablePointer<Float>)?) throws {
        if op != "backward_kept" { kept = nil }  // the workers discard it on any other call
        try start()
        func part<T>(_ values: [T], _ name: String, _ rows: Range<Int>) -> [T] {
            let w = width[name] ?? 1
            return Array(values[(rows.lowerBound * w)..<(rows.upperBound * w)])
        }
        var sent: [[String: Any]] = []
        var floatParts: [[String: [Float]]] = []
        var intParts: [[String: [Int32]]] = []
        for rows in slices {
            var f = fields
            f["rows"] = rows.count
            sent.append(f)
            var fs: [String: [Float]] = [:], ins: [String: [Int32]] = [:]
            for (name, values) in floats { fs[name] = part(values, name, rows) }
            for (name, values) in ints { ins[name] = part(values, name, rows) }
            floatParts.append(fs)
            intParts.append(ins)
        }
        let answers = try exchange(op, on: ranks, sent, floats: floatParts, ints: intParts)
        guard let output else { return }
        for (k, rank) in ranks.enumerated() {
            try rank.copy(answers[k], output.name, into: output.into + slices[k].lowerBound * output.width,
                          count: slices[k].count * output.width, op)
        }
    }

    /// Sends each rank its request, then reads the answers as they come.
    /// - Throws: ``PluginFailure`` with the first worker's message, or naming
    ///   the call and the tail of the output of a worker that died or missed
    ///   the deadline. A rank that died, missed the deadline, or failed
    ///   while others still work (they may wait for it in a collective) ends
    ///   every worker: the group cannot go on.
    private func exchange(_ op: String, on targets: [Rank], _ fields: [[String: Any]],
                          floats: [[String: [Float]]] = [], ints: [[String: [Int32]]] = []) throws -> [[String: Any]] {
        if let startFailure { throw startFailure }
        for (k, rank) in targets.enumerated() {
            let sent = try rank.send(op, fields[k], floats: k < floats.count ? floats[k] : [:], ints: k < ints.count ? ints[k] : [:])
            guard sent else { throw failed(op, rank, late: false) }
        }
        var answers: [Int: [String: Any]] = [:]
        let deadline = timeout < 0 ? nil : DispatchTime.now().uptimeNanoseconds + UInt64(timeout) * 1_000_000
        while answers.count < targets.count {
            let pending = targets.indices.filter { answers[$0] == nil }
            var fds = pending.map { pollfd(fd: targets[$0].socket, events: Int16(POLLIN), revents: 0) }
            let left = deadline.map { Int32(clamping: (Int64($0) - Int64(DispatchTime.now().uptimeNanoseconds)) / 1_000_000) }
            if let left, left <= 0 { throw failed(op, targets[pending[0]], late: true) }
            if poll(&fds, nfds_t(fds.count), left ?? -1) < 0 {
                if errno == EINTR { continue }
                throw PluginFailure(status: PRISM_E_IO, message: "\(op): waiting for the torch workers: \(String(cString: strerror(errno)))")
            }
            for (slot, k) in pending.enumerated() where fds[slot].revents != 0 {
                switch targets[k].receive(timeout: 60_000) {
                case .answer(let json): answers[k] = json
                case .gone, .late: throw failed(op, targets[k], late: false)
                }
                if answers[k]?["ok"] as? Bool != true {
                    let message = answers[k]?["error"] as? String ?? "\(op) failed"
                    if answers.count < targets.count {  // the others may be waiting for this rank
                        for rank in ranks { rank.end(grace: 0) }
                    }
                    throw PluginFailure(status: PRISM_E_INVALID_ARGUMENT, message: message)
                }
            }
        }
        return targets.indices.map { answers[$0]! }
    }

    /// The error for a worker that stopped answering: its exit and its last
    /// words. Ends every worker (later calls say the workers are gone).
    private func failed(_ op: String, _ rank: Rank, late: Bool) -> PluginFailure {
        if rank.pid == 0 {
            return PluginFailure(status: PRISM_E_STATE, message: "\(op): the torch workers are gone (an earlier call failed)")
        }
        let how = late ? "did not answer within timeout_s (\(Double(timeout) / 1000) s) and was stopped" : rank.end(grace: 2000)
        let tail = rank.logTail()
        for other in ranks { other.end(grace: late ? 0 : 2000) }
        let who = worldSize > 1 ? "torch worker of rank \(rank.index)" : "torch worker"
        return PluginFailure(status: late ? PRISM_E_TIMEOUT : PRISM_E_IO, message: "\(op): the \(who) \(how); its last output:\n\(tail)")
    }
}
