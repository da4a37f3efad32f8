import Foundation
import PrismDigest
import PrismCore

/// A run's directory: `config.yaml` (resolved), `metrics.jsonl`,
/// `samples.jsonl`, `checkpoints/step-NNNNNN/` (model + trainer state,
/// written atomically) with `checkpoints/latest`, and `report.html`.
public struct RunDirectory: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public var configPath: String { path + "/config.yaml" }
    public var metricsPath: String { path + "/metrics.jsonl" }
    public var samplesPath: String { path + "/samples.jsonl" }
    public var reportPath: String { path + "/report.html" }
    var checkpoints: String { path + "/checkpoints" }

    /// The trainer's state at a checkpoint.
    public struct State: Codable, Sendable, Equatable {
        public var step: Int
        public var rng: [UInt64]
        public var dataCursor: Int
        /// Budget tokens spent so far (absent in checkpoints of older runs).
        public var spentTokens: Double?

        public init(step: Int, rng: [UInt64], dataCursor: Int, spentTokens: Double? = nil) {
            self.step = step
            self.rng = rng
            self.dataCursor = dataCursor
            self.spentTokens = spentTokens
        }
    }

    public func create() throws {
        do {
            try FileManager.default.createDirectory(atPath: checkpoints, withIntermediateDirectories: true)
        } catch {
            throw TrainerError("\(path): cannot create the run directory (\(Self.obstacle(checkpoints) ?? reason(error)))")
        }
    }

    /// Why a directory cannot be made at `path`: the nearest existing
    /// ancestor is not a directory, or cannot be written.
    static func obstacle(_ path: String) -> String? {
        var ancestor = URL(fileURLWithPath: path).deletingLastPathComponent()
        while ancestor.path != "/" {
            if FileManager.default.fileExists(atPath: ancestor.path) {
                let type = (try? FileManager.default.attributesOfItem(atPath: ancestor.path))?[.type] as? FileAttributeType
                if type != .typeDirectory { return "\(ancestor.path) is not a directory" }
                return FileManager.default.isWritableFile(atPath: ancestor.path) ? nil : "\(ancestor.path) is not writable"
            }
            ancestor = ancestor.deletingLastPathComponent()
        }
        return nil
    }

    // MARK: - Ownership

    /// An exclusive hold on a run directory (`flock` on `RUN/.lock`, which
    /// records the holder's pid); released when the value goes away or the
    /// process ends, however it ends.
    public final class Lock {
        let descriptor: Int32
        init(descriptor: Int32) { self.descriptor = descriptor }
        deinit { close(descriptor) }
    }

    var lockPath: String { path + "/.lock" }

    /// Takes the run's lock, creating the directory.
    /// - Throws: naming the pid that holds it when another process writes this run.
    public func lock() throws -> Lock {
        try create()
        let fd = unsafe open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TrainerError("\(lockPath): cannot open the lock file (\(errorText(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            let holder = (try? String(contentsOfFile: lockPath, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            throw TrainerError("\(path): in use by process \(holder.isEmpty ? "(unknown pid)" : holder) (it holds \(lockPath)); "
                + "wait for it to finish, stop it, or choose another --run")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = unsafe pid.withUnsafeBytes { unsafe pwrite(fd, $0.baseAddress, $0.count, 0) }
        return Lock(descriptor: fd)
    }

    /// Whether the directory already holds a run (a config, metrics or a checkpoint).
    public var holdsRun: Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: configPath) || fm.fileExists(atPath: metricsPath)
            || !((try? fm.contentsOfDirectory(atPath: checkpoints))?.filter { $0.hasPrefix("step-") }.isEmpty ?? true)
    }

    /// Moves the run aside to `RUN.replaced-<time>` (never deletes it).
    /// - Returns: where it went.
    public func moveAside() throws -> String {
        let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: .current,
                                                formatOptions: [.withYear, .withMonth, .withDay, .withTime])
        var target = path + ".replaced-" + stamp
        var n = 1
        while FileManager.default.fileExists(atPath: target) {
            n += 1
            target = path + ".replaced-" + stamp + "-\(n)"
        }
        do {
            try FileManager.default.moveItem(atPath: path, toPath: target)
        } catch {
            throw TrainerError("\(path): cannot move the old run aside to \(target) (\(reason(error)))")
        }
        return target
    }

    // MARK: - Checkpoints

    /// Which checkpoints to keep: the newest `last` plus every step that is
    /// a multiple of `every` (0 = none such); `last` 0 keeps all.
    public struct Retention: Sendable, Equatable {
        public var last: Int
        public var every: Int
        public init(last: Int, every: Int) {
            self.last = last
            self.every = every
        }
        public static let all = Retention(last: 0, every: 0)
    }

    /// A checkpoint's manifest: every file's size and SHA-256.
    struct Manifest: Codable, Equatable {
        struct File: Codable, Equatable {
            var bytes: Int
            var sha256: String
        }
        var format = 1
        var step: Int
        var files: [String: File]
    }

    /// Writes a checkpoint: the model (via the backend's own save), the
    /// state and a manifest of both (sizes and SHA-256) into a temporary
    /// directory, renamed into place, then `latest` updated atomically and
    /// old checkpoints pruned by `retention`. An interrupted write leaves
    /// the previous ones intact.
    public func saveCheckpoint(_ state: State, backend: any ComputeBackend, retention: Retention = .all) throws {
        let name = Self.checkpointName(state.step)
        let temporary = checkpoints + "/." + name + ".tmp"
        let final = checkpoints + "/" + name
        let fm = FileManager.default
        do {
            try? fm.removeItem(atPath: temporary)
            try fm.createDirectory(atPath: temporary, withIntermediateDirectories: true)
            try backend.save(to: temporary + "/model.safetensors")
            try JSONEncoder.sorted.encode(state).write(to: URL(fileURLWithPath: temporary + "/state.json"), options: .atomic)
            var files: [String: Manifest.File] = [:]
            for file in try fm.contentsOfDirectory(atPath: temporary).sorted() {
                let size = (try fm.attributesOfItem(atPath: temporary + "/" + file)[.size] as? Int) ?? 0
                files[file] = Manifest.File(bytes: size, sha256: try SHA256.hex(file: temporary + "/" + file))
            }
            let manifest = Manifest(step: state.step, files: files)
            try JSONEncoder.pretty.encode(manifest).write(to: URL(fileURLWithPath: temporary + "/manifest.json"), options: .atomic)
            try? fm.removeItem(atPath: final)
            try fm.moveItem(atPath: temporary, toPath: final)
            try Data(name.utf8).write(to: URL(fileURLWithPath: checkpoints + "/latest"), options: .atomic)
        } catch let error as TrainerError {
            try? fm.removeItem(atPath: temporary)
            throw error
        } catch {
            try? fm.removeItem(atPath: temporary)
            throw TrainerError("\(final): cannot write the checkpoint (\(reason(error)))")
        }
        prune(retention, keeping: state.step)
    }

    static func checkpointName(_ step: Int) -> String { String(format: "step-%06d", step) }

    /// The steps that have a checkpoint directory, ascending.
    func checkpointSteps() -> [Int] {
        ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? [])
            .compactMap { $0.hasPrefix("step-") ? Int($0.dropFirst(5)) : nil }.sorted()
    }

    /// Removes the checkpoints `retention` does not keep (never `step`).
    func prune(_ retention: Retention, keeping step: Int) {
        guard retention.last > 0 else { return }
        let steps = checkpointSteps()
        let newest = Set(steps.suffix(retention.last))
        for s in steps where !newest.contains(s) && s != step && !(retention.every > 0 && s % retention.every == 0) {
            try? FileManager.default.removeItem(atPath: checkpoints + "/" + Self.checkpointName(s))
        }
    }

    /// Parses a checkpoint manifest and checks what can be checked without
    /// the files: its step, the files it must list, names that stay inside
    /// the checkpoint, sizes and digests that could be real.
    /// - Throws: ``TrainerError`` naming `path`.
    public static func checkManifest(_ data: Data, step: Int, path: String) throws {
        _ = try manifest(data, step: step, path: path)
    }

    static func manifest(_ data: Data, step: Int, path: String) throws -> Manifest {
        guard let manifest = try? JSONDecoder().decode(Manifest.self, from: data) else {
            throw TrainerError("\(path): not a checkpoint manifest (damaged?)")
        }
        guard manifest.format == 1 else { throw TrainerError("\(path): manifest format \(manifest.format); this Prism reads format 1") }
        guard manifest.step == step else {
            throw TrainerError("\(path): says step \(manifest.step) in the directory of step \(step)")
        }
        for required in ["model.safetensors", "state.json"] where manifest.files[required] == nil {
            throw TrainerError("\(path): does not list \(required)")
        }
        for (name, file) in manifest.files {
            guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", name != "manifest.json" else {
                throw TrainerError("\(path): lists '\(name)', which is not a file of the checkpoint")
            }
            guard file.bytes >= 0, file.sha256.count == 64, file.sha256.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
                throw TrainerError("\(path): the entry of \(name) is not a size and a SHA-256")
            }
        }
        return manifest
    }

    /// A checkpoint found valid.
    public struct Checkpoint: Sendable {
        public var state: State
        public var modelPath: String
        public var directory: String
        /// False for a checkpoint written before manifests existed.
        public var verified: Bool
    }

    /// Reads and checks one checkpoint: its manifest (every file's size and
    /// SHA-256), its state, and that the state's step is the directory's.
    /// - Throws: naming the file that is missing, damaged or inconsistent.
    /// - Parameter legacy: accept a checkpoint written before manifests
    ///   existed (no `manifest.json`), unverified.
    public func verifiedCheckpoint(step: Int, legacy: Bool = false) throws -> Checkpoint {
        let directory = checkpoints + "/" + Self.checkpointName(step)
        let fm = FileManager.default
        let manifestPath = directory + "/manifest.json"
        guard let manifestData = fm.contents(atPath: manifestPath) else {
            // Written before checkpoints had manifests: usable, not verifiable.
            guard legacy, fm.fileExists(atPath: directory + "/model.safetensors") else {
                throw TrainerError("\(manifestPath): missing; the checkpoint cannot be verified")
            }
            let state = try readState(directory, step: step)
            return Checkpoint(state: state, modelPath: directory + "/model.safetensors", directory: directory, verified: false)
        }
        let manifest = try Self.manifest(manifestData, step: step, path: manifestPath)
        for (name, expected) in manifest.files.sorted(by: { $0.key < $1.key }) {
            let file = directory + "/" + name
            guard let size = (try? fm.attributesOfItem(atPath: file))?[.size] as? Int else {
                throw TrainerError("\(file): missing (listed in the manifest)")
            }
            guard size == expected.bytes else {
                throw TrainerError("\(file): \(size) bytes, the manifest says \(expected.bytes) (truncated or changed)")
            }
            guard try SHA256.hex(file: file) == expected.sha256 else {
                throw TrainerError("\(file): SHA-256 differs from the manifest (the file is damaged or was edited)")
            }
        }
        let state = try readState(directory, step: step)
        return Checkpoint(state: state, modelPath: directory + "/model.safetensors", directory: directory, verified: true)
    }

    private func readState(_ directory: String, step: Int) throws -> State {
        let statePath = directory + "/state.json"
        guard let stateData = FileManager.default.contents(atPath: statePath),
              let state = try? JSONDecoder().decode(State.self, from: stateData), state.rng.count == 4
        else { throw TrainerError("\(statePath): not a trainer state") }
        guard state.step == step else {
            throw TrainerError("\(statePath): says step \(state.step) in the checkpoint of step \(step)")
        }
        return state
    }

    /// The newest checkpoint that verifies and agrees with `metrics.jsonl`
    /// (its step has a metrics line, with the same tokens spent). `latest`
    /// is only a hint: each rejected newer checkpoint is reported through
    /// `warn`, naming the file and why, and an older one is tried.
    /// - Returns: nil when the run has no checkpoint at all.
    /// - Throws: when checkpoints exist but none is usable.
    public func newestCheckpoint(warn: (String) -> Void) throws -> Checkpoint? {
        let steps = checkpointSteps()
        guard !steps.isEmpty else { return nil }
        let metrics = FileManager.default.fileExists(atPath: metricsPath) 
            ? try withoutActuallyEscaping(warn) { try readMetrics(tornTail: $0) } : []
        let anyManifest = steps.contains { FileManager.default.fileExists(atPath: checkpoints + "/" + Self.checkpointName($0) + "/manifest.json") }
        var reasons: [String] = []
        for step in steps.reversed() {
            do {
                // A manifest-less checkpoint is accepted only when no checkpoint of the run has one (an older run).
                let found = try verifiedCheckpoint(step: step, legacy: !anyManifest)
                if !found.verified {
                    warn("\(found.directory) was written before checkpoints had manifests; it is used unverified")
                }
                if !metrics.isEmpty { try crossCheck(found.state, metrics) }
                if let hint = FileManager.default.contents(atPath: checkpoints + "/latest"),
                   String(decoding: hint, as: UTF8.self) != Self.checkpointName(step) {
                    warn("\(checkpoints)/latest names \(String(decoding: hint, as: UTF8.self)); the newest valid checkpoint is \(Self.checkpointName(step))")
                } else if FileManager.default.contents(atPath: checkpoints + "/latest") == nil {
                    warn("\(checkpoints)/latest is missing; the newest valid checkpoint is \(Self.checkpointName(step))")
                }
                return found
            } catch {
                reasons.append("\(error)")
                warn("skipping checkpoint \(Self.checkpointName(step)): \(error)")
            }
        }
        throw TrainerError("\(checkpoints): no usable checkpoint among \(steps.count) (newest: \(reasons.first ?? ""))")
    }

    /// A checkpoint's state against the metrics written up to its step.
    func crossCheck(_ state: State, _ metrics: [(step: Int, values: [String: Double])]) throws {
        guard let line = metrics.last(where: { $0.step == state.step }) else {
            throw TrainerError("\(metricsPath): has no line for step \(state.step), the checkpoint's step (the metrics end at step \(metrics.last?.step ?? 0))")
        }
        if let spent = state.spentTokens, let logged = line.values[Metric.budgetSpent.rawValue], spent != logged {
            throw TrainerError("\(metricsPath): step \(state.step) spent \(Int(logged)) tokens, the checkpoint says \(Int(spent))")
        }
    }

    /// Appends one line to a JSONL file of the run.
    public func append(_ line: String, to file: String) throws {
        do {
            if !FileManager.default.fileExists(atPath: file) { _ = FileManager.default.createFile(atPath: file, contents: nil) }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data((line + "\n").utf8))
        } catch {
            throw TrainerError("\(file): cannot append (\(reason(error)))")
        }
    }

    /// Every line of `metrics.jsonl`: its step and its numeric values.
    /// - Throws: when the file is missing, or naming the line that is not a metrics line.
    /// - Parameter tornTail: skip a last line that is not a metrics line
    ///   (a write cut short by a crash), reporting it through `tornTail`.
    public func readMetrics(tornTail: ((String) -> Void)? = nil) throws -> [(step: Int, values: [String: Double])] {
        guard let data = FileManager.default.contents(atPath: metricsPath) else {
            throw TrainerError("\(metricsPath): no metrics (is \(path) a run directory?)")
        }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        return try lines.enumerated().compactMap { index, line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let step = object["step"] as? Int
            else {
                if let tornTail, index == lines.count - 1 {
                    tornTail("\(metricsPath):\(index + 1): the last line is cut short (a crash while writing?); it is dropped")
                    return nil
                }
                throw TrainerError("\(metricsPath):\(index + 1): not a metrics line")
            }
            return (step, object.compactMapValues { $0 as? Double })
        }
    }

    /// Drops metric and sample lines after `step` (a resumed run rewrites them).
    func truncate(after step: Int) throws {
        for file in [metricsPath, samplesPath] {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            let kept = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { line in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let s = object["step"] as? Int else { return false }
                return s <= step
            }
            do {
                try Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8)
                    .write(to: URL(fileURLWithPath: file), options: .atomic)
            } catch {
                throw TrainerError("\(file): cannot rewrite (\(reason(error)))")
            }
        }
    }
}

extension StepMetrics {
    /// One `metrics.jsonl` line: `{"step": n, name: value, ...}`; NaN as null.
    public func jsonLine(step: Int) -> String {
        var parts = ["\"step\":\(step)"]
        for (name, value) in entries {
            parts.append("\"\(name)\":" + (value.isFinite ? "\(value)" : "null"))
        }
        return "{" + parts.joined(separator: ",") + "}"
    }
}

/// The plain reason of a Foundation file error ("Permission denied"), not its dump.
func reason(_ error: any Error) -> String {
    let ns = error as NSError
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return errorText(Int32(underlying.code))
    }
    if ns.domain == NSPOSIXErrorDomain { return errorText(Int32(ns.code)) }
    switch ns.code {
    case NSFileWriteNoPermissionError, NSFileReadNoPermissionError: return "permission denied"
    case NSFileWriteVolumeReadOnlyError: return "read-only file system"
    case NSFileWriteOutOfSpaceError: return "no space left on the device"
    case NSFileNoSuchFileError, NSFileReadNoSuchFileError: return "no such file or directory"
    default: return ns.localizedDescription
    }
}

extension JSONEncoder {
    /// Indented JSON with sorted keys (files people read).
    static var pretty: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return encoder
    }
}

/// The C library's text for an `errno` value.
func errorText(_ code: Int32) -> String { unsafe String(cString: strerror(code)) }
