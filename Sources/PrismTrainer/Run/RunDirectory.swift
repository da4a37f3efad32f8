import Foundation
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
        try FileManager.default.createDirectory(atPath: checkpoints, withIntermediateDirectories: true)
    }

    /// Writes a checkpoint: the model (via the backend's own save) and the
    /// state into a temporary directory, renamed into place, then `latest`
    /// updated atomically. An interrupted write leaves the previous one intact.
    public func saveCheckpoint(_ state: State, backend: any ComputeBackend) throws {
        let name = String(format: "step-%06d", state.step)
        let temporary = checkpoints + "/." + name + ".tmp"
        let final = checkpoints + "/" + name
        let fm = FileManager.default
        try? fm.removeItem(atPath: temporary)
        try fm.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        try backend.save(to: temporary + "/model.safetensors")
        try JSONEncoder.sorted.encode(state).write(to: URL(fileURLWithPath: temporary + "/state.json"), options: .atomic)
        try? fm.removeItem(atPath: final)
        try fm.moveItem(atPath: temporary, toPath: final)
        try Data(name.utf8).write(to: URL(fileURLWithPath: checkpoints + "/latest"), options: .atomic)
    }

    /// The latest complete checkpoint, or nil.
    public func latestCheckpoint() throws -> (state: State, modelPath: String)? {
        guard let data = FileManager.default.contents(atPath: checkpoints + "/latest") else { return nil }
        let directory = checkpoints + "/" + String(decoding: data, as: UTF8.self)
        guard let stateData = FileManager.default.contents(atPath: directory + "/state.json") else {
            throw TrainerError("\(directory)/state.json: missing; the checkpoint is incomplete")
        }
        let state = try JSONDecoder().decode(State.self, from: stateData)
        return (state, directory + "/model.safetensors")
    }

    /// Appends one line to a JSONL file of the run.
    public func append(_ line: String, to file: String) throws {
        if !FileManager.default.fileExists(atPath: file) { _ = FileManager.default.createFile(atPath: file, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data((line + "\n").utf8))
    }

    /// Every line of `metrics.jsonl`: its step and its numeric values.
    /// - Throws: when the file is missing, or naming the line that is not a metrics line.
    public func readMetrics() throws -> [(step: Int, values: [String: Double])] {
        guard let data = FileManager.default.contents(atPath: metricsPath) else {
            throw TrainerError("\(metricsPath): no metrics (is \(path) a run directory?)")
        }
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated().map { index, line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let step = object["step"] as? Int
            else { throw TrainerError("\(metricsPath):\(index + 1): not a metrics line") }
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
            try Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8)
                .write(to: URL(fileURLWithPath: file), options: .atomic)
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
