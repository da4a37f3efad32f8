import CExactAnswerLogic
import PrismCore
import PrismHost
import PrismIsolation

/// The exact-answer reward implemented in Swift over the very same C matching
/// logic (`exact_answer_logic.h`) that the plugin calls: the baseline for the
/// cost of the plugin boundary.
final class DirectExactAnswer: RewardFunction {
    func score(_ batch: RewardBatch) -> [RewardScore] {
        batch.utf8.withUnsafeBufferPointer { text in
            text.withMemoryRebound(to: CChar.self) { text in
                (0..<batch.count).map { i in
                    let completion = batch.range(i, .completion)
                    let reference = batch.range(i, .reference)
                    guard !reference.isEmpty, let base = text.baseAddress else {
                        return RewardScore(reward: .nan, correct: false)
                    }
                    let ok = ea_matches(
                        base + completion.lowerBound, completion.count, base + reference.lowerBound,
                        reference.count, "#", 1, 0) != 0
                    return RewardScore(reward: ok ? 1 : 0, correct: ok)
                }
            }
        }
    }
}

/// Measures one reward call through the C ABI (the plugin, via its
/// `RewardFunction` adapter) against the same logic called directly from
/// Swift, at batch sizes 1 and 64. Targets: under 100 ns added per call at
/// batch 1, under 20 ns added per sample at batch 64.
public struct ABIBenchmark {
    public var pluginPath: String?
    public var samplesPerRun: Int

    public init(pluginPath: String?, samplesPerRun: Int) {
        self.pluginPath = pluginPath
        self.samplesPerRun = samplesPerRun
    }

    public struct Row: CustomStringConvertible {
        public var batch: Int
        public var directPerCall: Double
        public var pluginPerCall: Double
        public var addedPerCall: Double { pluginPerCall - directPerCall }
        public var addedPerSample: Double { addedPerCall / Double(batch) }

        public var description: String {
            func f(_ x: Double) -> String { String(Int((x * 10).rounded())).paddedTo(8, point: true) }
            return "batch \(String(batch).paddedTo(3)): direct \(f(directPerCall)) ns/call, "
                + "plugin \(f(pluginPerCall)) ns/call, added \(f(addedPerCall)) ns/call = \(f(addedPerSample)) ns/sample"
        }
    }

    public func run() throws -> String {
        guard let path = try pluginPath ?? PluginDiscovery.find(product: "PrismExactAnswer") else {
            throw PluginError(.fileMissing, plugin: "libPrismExactAnswer.so", reason: "not found in the plugin search path")
        }
        let plugin = try PluginLibrary.load(path).instantiate().rewardFunction()
        let isolated = try Isolation.reward(IsolationSpec(interface: .reward, library: path, role: "reward.plugin", timeout: 0),
                                            shouldCancel: { false })
        let direct = DirectExactAnswer()
        // The same rule exported as a bare C function, called through libffi (reward.function).
        let function = try FunctionPlugin.reward(FunctionDeclaration(
            role: .reward, key: "reward.function", library: path, symbol: "prism_exact_answer_match", signature: "d(bb)"))
        var functionRows: [String] = []
        var isolatedRows: [String] = []
        let sample = RewardSample(prompt: "12+34+7=", completion: "12+34=46;46+7=53;#53", reference: "53")
        var rows: [Row] = []
        for batchSize in [1, 64] {
            let batch = RewardBatch(Array(repeating: sample, count: batchSize))
            let calls = max(1, samplesPerRun / batchSize)
            // Same answers first: the comparison is only fair if both agree.
            let expected = direct.score(batch)
            guard try plugin.score(batch) == expected else {
                throw PluginError(.invalidOutput, plugin: path, reason: "plugin and direct scores differ")
            }
            let directTime = bestTime(units: calls) {
                for _ in 0..<calls { blackHole(direct.score(batch)) }
            }
            let pluginTime = try bestTime(units: calls) {
                for _ in 0..<calls { blackHole(try plugin.score(batch)) }
            }
            rows.append(Row(batch: batchSize, directPerCall: directTime, pluginPerCall: pluginTime))
            guard try function.score(batch) == expected else {
                throw PluginError(.invalidOutput, plugin: path, reason: "function and direct scores differ")
            }
            let functionTime = try bestTime(units: calls) {
                for _ in 0..<calls { blackHole(try function.score(batch)) }
            }
            functionRows.append(String(format: "batch %3d: function %8.1f ns/call, added %8.1f ns/call = %6.1f ns/sample over the table plugin (%.2fx)",
                                       batchSize, functionTime, functionTime - pluginTime,
                                       (functionTime - pluginTime) / Double(batchSize), functionTime / pluginTime))
            guard try isolated.score(batch) == expected else {
                throw PluginError(.invalidOutput, plugin: path, reason: "isolated and direct scores differ")
            }
            let isolatedCalls = max(1, calls / 200)  // a round trip is ~1000x a call
            let isolatedTime = try bestTime(units: isolatedCalls) {
                for _ in 0..<isolatedCalls { blackHole(try isolated.score(batch)) }
            }
            isolatedRows.append(String(format: "batch %3d: isolated %8.1f µs/call, added %8.1f µs/call = %6.2f µs/sample over the in-process plugin",
                                       batchSize, isolatedTime / 1000, (isolatedTime - pluginTime) / 1000,
                                       (isolatedTime - pluginTime) / 1000 / Double(batchSize)))
        }
        let verdict1 = rows[0].addedPerCall < 100 ? "met" : "MISSED"
        let verdict64 = rows[1].addedPerSample < 20 ? "met" : "MISSED"
        return """
            ABI boundary cost: exact-answer reward, plugin \(path)
            \(rows.map(\.description).joined(separator: "\n"))
            target batch 1: added < 100 ns/call (\(verdict1)); batch 64: added < 20 ns/sample (\(verdict64))
            reward.function (prism_exact_answer_match, "d(bb)", one libffi call per sample):
            \(functionRows.joined(separator: "\n"))
            isolation: process (the same plugin in a prism-plugin-runner process; socket frames, arrays in shared memory):
            \(isolatedRows.joined(separator: "\n"))
            """
    }
}

extension String {
    /// Right-aligned to `width`; with `point`, the last digit becomes a decimal.
    func paddedTo(_ width: Int, point: Bool = false) -> String {
        var text = self
        if point {
            let negative = text.hasPrefix("-")
            var digits = negative ? String(text.dropFirst()) : text
            while digits.count < 2 { digits = "0" + digits }
            text = (negative ? "-" : "") + digits.dropLast() + "." + digits.suffix(1)
        }
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
