import CPrismIsolation
import Foundation
import PrismCore
import PrismHost

/// The runner's side: loads one plugin in this process and answers the
/// host's calls until the host closes the socket. `prism-plugin-runner
/// serve` runs it.
public enum RunnerServer {
    /// Serves on descriptors 3 (socket) and 4 (shared memory).
    /// - Returns: the process's exit status.
    public static func serve() -> Int32 {
        prism_iso_runner_setup()
        let socket = PRISM_ISO_SOCKET_FD
        let region = SharedRegion(descriptor: PRISM_ISO_SHM_FD)
        var handler: Handler?
        while true {
            var header = [UInt8](repeating: 0, count: 4)
            guard header.withUnsafeMutableBytes({ prism_iso_read(socket, $0.baseAddress, 4, -1) }) == 0 else { return 0 }
            let length = Int(header[0]) | Int(header[1]) << 8 | Int(header[2]) << 16 | Int(header[3]) << 24
            guard length <= maximumFrame else { return 1 }
            var body = [UInt8](repeating: 0, count: length)
            guard length == 0 || body.withUnsafeMutableBytes({ prism_iso_read(socket, $0.baseAddress, length, 10_000) }) == 0 else {
                return 1
            }
            var reader = WireReader(bytes: body, region: region)
            var writer = WireWriter(region: region)
            writer.bool(true)
            do {
                let name = try reader.string()
                if name == "open" {
                    let interface = try reader.string(), library = try reader.string(), config = try reader.string()
                    let opened = try Handler.open(interface: interface, library: library, config: config)
                    handler = opened
                    writer.string(opened.id)
                    writer.bool(opened.needsJudge)
                } else if name == "ping" {
                    // The host checks the runner is up and the plugin open.
                } else if let handler {
                    try handler.handle(name, &reader, &writer)
                } else {
                    throw WireError("\(name) before open")
                }
            } catch {
                let failure = error as? PluginError
                    ?? PluginError(.callFailed, plugin: handler?.id ?? "runner", reason: "\(error)")
                writer = WireWriter(region: region)
                writer.bool(false)
                writer.string(failure.code.name)
                writer.string(failure.plugin)
                writer.string(failure.reason)
            }
            guard writer.bytes.withUnsafeBytes({ prism_iso_send(socket, $0.baseAddress, UInt32($0.count)) }) == 0 else { return 0 }
        }
    }

    /// One opened plugin and the calls of its interface.
    struct Handler {
        let id: String
        var needsJudge = false
        let body: (String, inout WireReader, inout WireWriter) throws -> Void

        func handle(_ name: String, _ reader: inout WireReader, _ writer: inout WireWriter) throws {
            try body(name, &reader, &writer)
        }

        static func open(interface: String, library path: String, config: String) throws -> Handler {
            let library = try PluginLibrary.load(path)
            let instance = try library.instantiate(config: config)
            func unknown(_ name: String) -> WireError { WireError("\(interface) has no call '\(name)'") }
            switch PluginInterface(rawValue: interface) {
            case .reward:
                let reward = try instance.rewardFunction()
                return Handler(id: library.id) { name, reader, writer in
                    guard name == "score" else { throw unknown(name) }
                    try writer.rewardScores(try reward.score(try reader.rewardBatch()))
                }
            case .feedback:
                let judge = try instance.feedbackGenerator()
                return Handler(id: library.id) { name, reader, writer in
                    guard name == "assess" else { throw unknown(name) }
                    // The report travels back also when the judge fails (ABI 1.4).
                    let group = try reader.feedbackGroup()
                    var report = FeedbackReport()
                    do {
                        let feedback = try judge.assess(group, report: &report)
                        writer.feedbackReport(report)
                        writer.bool(true)
                        try writer.feedback(feedback)
                    } catch let failure as PluginError {
                        writer.feedbackReport(report)
                        writer.bool(false)
                        writer.string(failure.code.name)
                        writer.string(failure.plugin)
                        writer.string(failure.reason)
                    }
                }
            case .sampler:
                let sampler = try instance.sampler()
                return Handler(id: library.id) { name, reader, writer in
                    guard name == "sample" else { throw unknown(name) }
                    let logits = try reader.array(Float.self)
                    let rows = try reader.int(), vocab = try reader.int()
                    var rng = try reader.rng()
                    guard rows >= 0, vocab > 0, logits.count == rows * vocab else { throw WireError("logits are not [rows][vocab]") }
                    try writer.array(try sampler.sample(logits: logits, rows: rows, vocab: vocab, rng: &rng))
                    writer.rng(rng)
                }
            case .strategy:
                let (strategy, needsJudge) = try instance.groupStrategy()
                return Handler(id: library.id, needsJudge: needsJudge) { name, reader, writer in
                    switch name {
                    case "wants_feedback": writer.bool(try strategy.wantsFeedback(for: try reader.strategyGroup()))
                    case "disposition": writer.int(Int(try strategy.disposition(for: try reader.strategyGroup()).rawValue))
                    case "advantages":
                        let count = try reader.int()
                        guard count >= 0 else { throw WireError("\(count) groups") }
                        let groups = try (0..<count).map { _ in try reader.strategyGroup() }
                        try writer.scoredBatch(try strategy.advantages(for: groups))
                    default: throw unknown(name)
                    }
                }
            case .backend:
                let backend = try instance.computeBackend()
                return Handler(id: library.id) { name, reader, writer in
                    switch name {
                    case "info": writer.backendInfo(try backend.info())
                    case "tokenize": try writer.array(try backend.tokenize(try reader.string()))
                    case "tokenize_prompt":
                        let ids = try backend.tokenizePrompt(try reader.string())
                        writer.bool(ids != nil)
                        if let ids { try writer.array(ids) }
                    case "detokenize": writer.string(try backend.detokenize(try reader.array(Int32.self)))
                    case "begin_decoding": try writer.array(try backend.beginDecoding(try reader.tokenBatch()))
                    case "decode_step": try writer.array(try backend.decodeStep(try reader.array(Int32.self)))
                    case "decode_step_rows":
                        let rows = try reader.array(Int32.self).map(Int.init)
                        let out = try backend.decodeStep(rows: rows, tokens: try reader.array(Int32.self))
                        writer.bool(out != nil)
                        if let out { try writer.array(out) }
                    case "logprobs":
                        let batch = try reader.tokenBatch()
                        guard let model = ModelKind(rawValue: Int32(truncatingIfNeeded: try reader.int())) else {
                            throw WireError("model kind")
                        }
                        try writer.array(try backend.logprobs(batch, model: model, temperature: Float(try reader.double())))
                    case "backward":
                        let batch = try reader.tokenBatch()
                        let temperature = Float(try reader.double())
                        try backend.backward(batch, temperature: temperature, gradLogprobs: try reader.array(Float.self))
                    case "logprobs_keep":
                        let batch = try reader.tokenBatch()
                        let out = try backend.logprobsKeepingPass(batch, temperature: Float(try reader.double()))
                        writer.bool(out != nil)
                        if let out { try writer.array(out) }
                    case "backward_kept": try backend.backwardKeptPass(gradLogprobs: try reader.array(Float.self))
                    case "optimizer_step": writer.double(try backend.optimizerStep(try reader.optimizerStep()))
                    case "zero_grad": try backend.zeroGrad()
                    case "snapshot_reference": try backend.snapshotReference()
                    case "save": try backend.save(to: try reader.string())
                    case "load": try backend.load(from: try reader.string())
                    default: throw unknown(name)
                    }
                }
            case nil:
                throw WireError("unknown interface '\(interface)'")
            }
        }
    }
}
