import Foundation
import PrismCore
import PrismHost
import PrismIsolation
import PrismTrainer

/// Builds a run's ``Components`` from a config: which plugin each key
/// names, where it is found, how it is configured. Shared by the CLI, the
/// tests and programs that embed Prism.
///
/// A plugin key (`model.plugin`, `sampler.plugin`, `reward.plugin`,
/// `judge.plugin`, `strategy.plugin`) holds either a path to a `.so` (any
/// value containing `/` or ending in `.so`; relative paths in a config file
/// are relative to the file's folder, see ``ConfigFile``) or a product name
/// `NAME`, found as `libNAME.so` (or `NAME` itself when it already starts
/// with `lib`) next to the running executable, then in each directory of
/// `PRISM_PLUGIN_PATH`.
public enum ComponentLoader {
    /// The library a plugin key names.
    /// - Throws: ``PluginError`` `fileMissing` naming the key and the
    ///   directories searched, or the error of a library that does not load.
    public static func library(_ name: String, key: String) throws -> PluginLibrary {
        try PluginLibrary.load(try libraryPath(name, key: key))
    }

    /// The file a plugin key names, found but not loaded.
    /// - Throws: ``PluginError`` `fileMissing` naming the key and the directories searched.
    public static func libraryPath(_ name: String, key: String) throws -> String {
        if name.contains("/") || name.hasSuffix(".so") {
            return name.hasPrefix("/") ? name : FileManager.default.currentDirectoryPath + "/" + name
        }
        let product = name.hasPrefix("lib") ? String(name.dropFirst(3)) : name
        guard let found = try PluginDiscovery.find(product: product) else {
            throw PluginError(.fileMissing, plugin: key, reason: "plugin '\(name)' not found as lib\(product).so next to prism (or libPrismEmbed.so) or in PRISM_PLUGIN_PATH "
                + "(searched \(PluginDiscovery.searchDirectories().joined(separator: ", ")))")
        }
        return found
    }

    /// How `role`'s plugin (`model`, `sampler`, `reward`, `judge`,
    /// `strategy`) runs: nil in process, else its isolation spec.
    static func isolation(_ config: ConfigFile, _ role: String, interface: PluginInterface,
                          pluginConfig: String? = nil) throws -> IsolationSpec? {
        guard config.string(role + ".isolation") == "process" else { return nil }
        return IsolationSpec(
            interface: interface, library: try libraryPath(config.string(role + ".plugin"), key: role + ".plugin"),
            config: pluginConfig ?? config.pluginConfig(role + ".config"), role: role + ".plugin",
            timeout: config.double(role + ".timeout_s"), quarantineAfter: config.int("plugins.quarantine_after"))
    }

    /// The run's plugins: the backend (with `model.checkpoint` loaded when
    /// `loadingWeights`; the trainer loads it itself), the sampler at
    /// `grpo.temperature` and a greedy one, the reward, the judge and a
    /// separate evaluation judge when `eval.judge_config` is set, and the
    /// strategy plugin when `strategy.plugin` is set.
    /// - Throws: when a plugin is missing or fails, when a strategy parameter
    ///   does not belong to the strategy, or when the strategy needs a judge
    ///   and `judge.plugin` is empty.
    ///
    /// A plugin whose `<role>.isolation` is `process` runs in its own
    /// runner process (``Isolation``); `shouldCancel` lets a stop interrupt
    /// a call waiting on it.
    public static func components(_ config: ConfigFile, loadingWeights: Bool = false,
                                  shouldCancel: @escaping () -> Bool = { false }) throws -> Components {
        let backend: any ComputeBackend = if let spec = try isolation(config, "model", interface: .backend) {
            try Isolation.backend(spec, shouldCancel: shouldCancel)
        } else {
            try library(config.string("model.plugin"), key: "model.plugin")
                .instantiate(config: config.pluginConfig("model.config")).computeBackend()
        }
        if loadingWeights, !config.string("model.checkpoint").isEmpty {
            try backend.load(from: config.string("model.checkpoint"))
        }
        let samplerConfig = try merged(config.pluginConfig("sampler.config"), ["temperature": config.double("grpo.temperature")])
        let sampler: any Sampler, greedy: any Sampler
        if var spec = try isolation(config, "sampler", interface: .sampler, pluginConfig: samplerConfig) {
            sampler = try Isolation.sampler(spec, shouldCancel: shouldCancel)
            spec.config = #"{"greedy": true}"#
            greedy = try Isolation.sampler(spec, shouldCancel: shouldCancel)
        } else {
            let samplerLibrary = try library(config.string("sampler.plugin"), key: "sampler.plugin")
            sampler = try samplerLibrary.instantiate(config: samplerConfig).sampler()
            greedy = try samplerLibrary.instantiate(config: #"{"greedy": true}"#).sampler()
        }
        let reward = try self.reward(config, shouldCancel: shouldCancel)
        let (judge, evaluationJudge) = try judges(config, shouldCancel: shouldCancel)
        let (strategy, needsJudge, strategyKey) = try self.strategy(config, shouldCancel: shouldCancel)
        if needsJudge, judge == nil {
            throw TrainerError("\(strategyKey) needs a judge; set judge.plugin")
        }
        return Components(backend: backend, sampler: sampler, greedySampler: greedy, reward: reward, judge: judge,
                          evaluationJudge: evaluationJudge, strategy: strategy)
    }

    /// The reward the config names: `reward.function`, else `reward.plugin`
    /// (in this process or, with `reward.isolation: process`, in a runner).
    public static func reward(_ config: ConfigFile, shouldCancel: @escaping () -> Bool = { false }) throws -> any RewardFunction {
        if let declaration = try function(config, .reward) {
            return try FunctionPlugin.reward(declaration)
        }
        if let spec = try isolation(config, "reward", interface: .reward) {
            return try Isolation.reward(spec, shouldCancel: shouldCancel)
        }
        return try library(config.string("reward.plugin"), key: "reward.plugin")
            .instantiate(config: config.pluginConfig("reward.config")).rewardFunction()
    }

    /// The training judge the config names (`judge.function`, else
    /// `judge.plugin`; nil when both are empty) and the evaluation judge
    /// (`eval.judge_config`; by default the same instance).
    public static func judges(_ config: ConfigFile, shouldCancel: @escaping () -> Bool = { false }) throws
        -> (training: (any FeedbackGenerator)?, evaluation: (any FeedbackGenerator)?)
    {
        if let declaration = try function(config, .judge) {
            let judge = try FunctionPlugin.judge(declaration)
            return (judge, judge)
        }
        let judgeName = config.string("judge.plugin")
        guard !judgeName.isEmpty else { return (nil, nil) }
        let evaluationConfig = config.pluginConfig("eval.judge_config")
        if let spec = try isolation(config, "judge", interface: .feedback) {
            let judge = try Isolation.judge(spec, shouldCancel: shouldCancel)
            var evaluation = spec
            evaluation.config = evaluationConfig
            return (judge, evaluationConfig == "{}" ? judge : try Isolation.judge(evaluation, shouldCancel: shouldCancel))
        }
        let judgeLibrary = try library(judgeName, key: "judge.plugin")
        let judge = try judgeLibrary.instantiate(config: config.pluginConfig("judge.config")).feedbackGenerator()
        return (judge, evaluationConfig == "{}" ? judge : try judgeLibrary.instantiate(config: evaluationConfig).feedbackGenerator())
    }

    /// The function `<role>.function` declares (checked, not loaded), or nil
    /// when the key is not set.
    /// - Throws: ``PluginError`` naming the key: a missing or unknown field,
    ///   a malformed signature or one that does not fit the role; a
    ///   ``ConfigError`` when `<role>.isolation` is `process` (functions run
    ///   in the process).
    public static func function(_ config: ConfigFile, _ role: FunctionDeclaration.Role) throws -> FunctionDeclaration? {
        let key = role.rawValue + ".function"
        let json = config.pluginConfig(key)
        guard json != "{}" else { return nil }
        if config.string(role.rawValue + ".isolation") == "process" {
            throw ConfigError("\(key): a function runs in this process; set \(role.rawValue).isolation: in-process, "
                + "or wrap the function in a plugin to isolate it")
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
        let allowed = ["library", "symbol", "signature"] + (role == .reward ? ["correct_at"] : ["separator"])
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw PluginError(.createFailed, plugin: key, reason: "unknown key '\(unknown)'; expected \(allowed.joined(separator: ", "))")
        }
        func text(_ name: String) throws -> String {
            guard let value = object[name] as? String, !value.isEmpty else {
                throw PluginError(.createFailed, plugin: key, reason: "\(name): expected a non-empty string")
            }
            return value
        }
        var correctAt = 1.0
        if let value = object["correct_at"] {
            // Decoded strictly: JSON true is not the number 1.
            struct Threshold: Decodable { var correct_at: Double }
            guard let number = try? JSONDecoder().decode(Threshold.self, from: Data(json.utf8)).correct_at,
                  number.isFinite else {
                let written = (try? JSONSerialization.data(withJSONObject: [value])).map { String(decoding: $0.dropFirst().dropLast(), as: UTF8.self) }
                throw PluginError(.createFailed, plugin: key, reason: "correct_at: expected a number, got \(written ?? "\(value)")")
            }
            correctAt = number
        }
        var separator = "\n"
        if let value = object["separator"] {
            guard let string = value as? String, !string.isEmpty else {
                throw PluginError(.createFailed, plugin: key, reason: "separator: expected a non-empty string, got \(value)")
            }
            separator = string
        }
        return try FunctionDeclaration(role: role, key: key, library: try text("library"), symbol: try text("symbol"),
                                       signature: try text("signature"), correctAt: correctAt, separator: separator)
    }

    /// A strategy plugin, or the built-in strategy checked now (its
    /// parameters); whether it needs the judge; the key that chose it.
    static func strategy(_ config: ConfigFile, shouldCancel: @escaping () -> Bool) throws
        -> ((any GroupStrategy)?, Bool, String)
    {
        let name = config.string("strategy.plugin")
        guard !name.isEmpty else {
            _ = try config.strategy()
            return (nil, config.strategyDescriptor.needsJudge, "strategy.name \(config.string("strategy.name"))")
        }
        if let spec = try isolation(config, "strategy", interface: .strategy) {
            let found = try Isolation.strategy(spec, shouldCancel: shouldCancel)
            return (found.strategy, found.needsJudge, "strategy.plugin \(name)")
        }
        let found = try library(name, key: "strategy.plugin")
            .instantiate(config: config.pluginConfig("strategy.config")).groupStrategy()
        return (found.strategy, found.needsJudge, "strategy.plugin \(name)")
    }

    /// A plugin config with some keys set.
    static func merged(_ json: String, _ values: [String: Any]) throws -> String {
        var object = (try JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
        for (key, value) in values { object[key] = value }
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }
}
