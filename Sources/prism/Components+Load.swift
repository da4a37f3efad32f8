import Foundation
import PrismCore
import PrismHost
import PrismTrainer

/// Loads the plugins a config names (wiring: PrismHost -> PrismCore protocols).
enum PluginLoading {
    /// A plugin by product name (found next to prism, then in
    /// PRISM_PLUGIN_PATH) or by path.
    static func library(_ name: String, key: String) throws -> PluginLibrary {
        let path: String
        if name.contains("/") || name.hasSuffix(".so") {
            path = name
        } else if let found = PluginDiscovery.find(product: name) {
            path = found
        } else {
            throw TrainerError("\(key): plugin '\(name)' not found next to prism or in PRISM_PLUGIN_PATH (searched \(PluginDiscovery.searchDirectories().joined(separator: ", ")))")
        }
        return try PluginLibrary.load(path)
    }

    /// The run's plugins; with `loadingWeights`, the backend also loads
    /// `model.checkpoint` when one is set (the trainer loads it itself).
    static func components(_ config: ConfigFile, loadingWeights: Bool = false) throws -> Components {
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
        // The strategy: a plugin, or the built-in one (its parameters checked now).
        let strategyName = config.string("strategy.plugin")
        var strategy: (any GroupStrategy)?
        let needsJudge: Bool
        let strategyKey: String
        if strategyName.isEmpty {
            _ = try config.strategy()
            needsJudge = config.strategyDescriptor.needsJudge
            strategyKey = "strategy.name \(config.string("strategy.name"))"
        } else {
            let found = try library(strategyName, key: "strategy.plugin")
                .instantiate(config: config.pluginConfig("strategy.config")).groupStrategy()
            strategy = found.strategy
            needsJudge = found.needsJudge
            strategyKey = "strategy.plugin \(strategyName)"
        }
        if needsJudge, judge == nil {
            throw TrainerError("\(strategyKey) needs a judge; set judge.plugin")
        }
        return Components(backend: backend, sampler: sampler, greedySampler: greedy, reward: reward, judge: judge,
                          evaluationJudge: evaluationJudge, strategy: strategy)
    }

    /// A plugin config with some keys set.
    static func merged(_ json: String, _ values: [String: Any]) throws -> String {
        var object = (try JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
        for (key, value) in values { object[key] = value }
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }
}

/// Ctrl-C (SIGINT) or SIGTERM: the run stops after the current step, with a
/// checkpoint. A second signal leaves at once (exit 130).
enum Interrupt {
    nonisolated(unsafe) static var requested: sig_atomic_t = 0

    static func install() {
        let handler: @convention(c) (Int32) -> Void = { _ in
            if Interrupt.requested != 0 { _exit(130) }
            Interrupt.requested = 1
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        // A parent may start us with these signals blocked (Foundation's
        // Process spawned from a worker thread passes its mask on); the
        // signals are sent to the process, so unblocking them on this thread
        // is enough for the handler to run.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}
