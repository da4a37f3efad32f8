import PrismCore

/// The outcome of one conformance check.
public struct ConformanceResult: Sendable, Equatable {
    /// "reward: empty batch", "load", ...
    public var name: String
    public var passed: Bool
    /// Why it failed, or a short fact when it passed ("5000 calls").
    public var detail: String
}

/// A conformance suite for plugin authors (`prism plugins check`): loads a
/// plugin and exercises every interface it claims with edge cases — empty
/// batches, long and non-ASCII UTF-8, thousands of calls, repeated
/// create/destroy, NaN inputs — checking each output against the ABI contract.
public struct ConformanceSuite {
    public var path: String
    /// The JSON config for `create`.
    public var config: String
    /// How many calls the "many calls" checks make.
    public var callCount: Int

    public init(path: String, config: String = "{}", callCount: Int = 2000) {
        self.path = path
        self.config = config
        self.callCount = callCount
    }

    /// Runs every applicable check, reporting each as it completes.
    /// - Returns: the results, in order.
    @discardableResult
    public func run(report: (ConformanceResult) -> Void = { _ in }) -> [ConformanceResult] {
        var results: [ConformanceResult] = []
        func record(_ name: String, _ body: () throws -> String) {
            let result: ConformanceResult
            do {
                result = ConformanceResult(name: name, passed: true, detail: try body())
            } catch {
                result = ConformanceResult(name: name, passed: false, detail: "\(error)")
            }
            results.append(result)
            report(result)
        }

        var library: PluginLibrary?
        record("load") {
            library = try PluginLibrary.load(path)
            return "\(library!.id) \(library!.version), ABI \(library!.abiMajor).\(library!.abiMinor)"
        }
        guard let library else { return results }

        record("metadata") {
            try expect(library.id.contains(".") && !library.id.contains(" "), "id '\(library.id)' is not reverse-DNS")
            try expect(!library.name.isEmpty, "name is empty")
            try expect(!library.version.isEmpty, "version is empty")
            return "id \(library.id)"
        }

        var instance: PluginInstance?
        record("create with config") {
            instance = try library.instantiate(config: config)
            return "config \(config)"
        }
        guard let instance else { return results }

        record("malformed config is refused") {
            do {
                _ = try library.instantiate(config: "{ not json")
            } catch let error as PluginError where error.code == .createFailed {
                try expect(error.reason.contains(":"), "create failed without a last_error message")
                return "refused with a message"
            }
            throw CheckFailure("create accepted '{ not json'")
        }

        record("repeated create/destroy") {
            let count = min(callCount, 200)
            for _ in 0..<count { _ = try library.instantiate(config: config) }
            return "\(count) instances"
        }

        let interfaces = instance.interfaces
        record("interfaces") {
            try expect(!interfaces.isEmpty, "provides none of \(PluginInterface.allCases.map(\.id))")
            return interfaces.joined(separator: ", ")
        }

        if interfaces.contains(PluginInterface.reward.id) {
            RewardChecks(instance: instance, callCount: callCount).run(record)
        }
        if interfaces.contains(PluginInterface.feedback.id) {
            FeedbackChecks(instance: instance, callCount: callCount).run(record)
        }
        if interfaces.contains(PluginInterface.sampler.id) {
            SamplerChecks(instance: instance, callCount: callCount).run(record)
        }
        if interfaces.contains(PluginInterface.backend.id) {
            BackendChecks(instance: instance, callCount: callCount).run(record)
        }
        if interfaces.contains(PluginInterface.strategy.id) {
            StrategyChecks(instance: instance, callCount: callCount).run(record)
        }
        return results
    }
}

/// A failed expectation inside a check.
struct CheckFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw CheckFailure(message()) }
}

/// Texts that stress UTF-8 handling: non-ASCII, combining marks, emoji, long.
enum StressText {
    static let nonASCII = "Σ 12+34=46 ½ — 数学 🚀 e\u{301} \u{0}zero"
    static let long = String(repeating: "12+34=46;46+7=53;", count: 6000) + "#53"
}
