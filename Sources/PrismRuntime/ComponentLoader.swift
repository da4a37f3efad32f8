import Foundation
import PrismCore
import PrismHost
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
    /// - Throws: ``TrainerError`` naming the key and the directories searched,
    ///   or the ``PluginError`` of a library that does not load.
    public static func library(_ name: String, key: String) throws -> PluginLibrary {
        if name.contains("/") || name.hasSuffix(".so") { return try PluginLibrary.load(name) }
        let product = name.hasPrefix("lib") ? String(name.dropFirst(3)) : name
        guard let found = PluginDiscovery.find(product: product) else {
            throw TrainerError("\(key): plugin '\(name)' not found as lib\(product).so next to prism or in PRISM_PLUGIN_PATH "
                + "(searched \(PluginDiscovery.searchDirectories().joined(separator: ", ")))")
        }
        return try PluginLibrary.load(found)
    }

    /// The run's plugins: the backend (with `model.checkpoint` loaded when
    /// `loadingWeights`; the trainer loads it itself), the sampler at
    /// `grpo.temperature` and a greedy one, the reward, the judge and a
    /// separate evaluation judge when `eval.judge_config` is set, and the
    /// strategy plugin when `strategy.plugin` is set.
    /// - Throws: when a plugin is missing or fails, when a strategy parameter
    ///   does not belong to the strategy, or when the strategy needs a judge
    ///   and `judge.plugin` is empty.
    public static func components(_ config: ConfigFile, loadingWeights: Bool = false) throws -> Components {
        let backend = try library(config.string("model.plugin"), key: "model.plugin")
            .instantiate(config: config.pluginConfig("model.config")).computeBackend()
        if loadingWeights, !config.string("model.checkpoint").isEmpty {
            try backend.load(from: config.string("model.checkpoint"))
        }
        let samplerLibrary = try library(config.string("sampler.plugin"), key: "sampler.plugin")
        let samplerConfig = try merged(config.pluginConfig("sampler.config"), ["temperature": config.double("grpo.temperature")])
        let sampler = try samplerLibrary.instantiate(config: samplerConfig).sampler()
        let greedy = try samplerLibrary.instantiate(config: #"{"greedy": true}"#).sampler()
        let reward = try library(config.string("reward.plugin"), key: "reward.plugin")
            .instantiate(config: config.pluginConfig("reward.config")).rewardFunction()
        let judgeName = config.string("judge.plugin")
        let judgeLibrary = judgeName.isEmpty ? nil : try library(judgeName, key: "judge.plugin")
        let judge = try judgeLibrary?.instantiate(config: config.pluginConfig("judge.config")).feedbackGenerator()
        let evaluationConfig = config.pluginConfig("eval.judge_config")
        let evaluationJudge = evaluationConfig == "{}" ? judge
            : try judgeLibrary?.instantiate(config: evaluationConfig).feedbackGenerator()
        let (strategy, needsJudge, strategyKey) = try self.strategy(config)
        if needsJudge, judge == nil {
            throw TrainerError("\(strategyKey) needs a judge; set judge.plugin")
        }
        return Components(backend: backend, sampler: sampler, greedySampler: greedy, reward: reward, judge: judge,
                          evaluationJudge: evaluationJudge, strategy: strategy)
    }

    /// A strategy plugin, or the built-in strategy checked now (its
    /// parameters); whether it needs the judge; the key that chose it.
    static func strategy(_ config: ConfigFile) throws -> ((any GroupStrategy)?, Bool, String) {
        let name = config.string("strategy.plugin")
        guard !name.isEmpty else {
            _ = try config.strategy()
            return (nil, config.strategyDescriptor.needsJudge, "strategy.name \(config.string("strategy.name"))")
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
