import PrismCore

extension ConfigFile {
    /// The strategy's descriptor: the built-in one `strategy.name` names.
    public var strategyDescriptor: StrategyDescriptor {
        StrategyRegistry.builtIn.descriptor(string("strategy.name"))!
    }

    /// The values of the `strategy.*` parameter keys set in this config, by
    /// parameter name.
    public var strategyParameterValues: [String: String] {
        var out: [String: String] = [:]
        for parameter in StrategyRegistry.builtIn.parameters {
            if let value = values["strategy." + parameter.name] { out[parameter.name] = value }
        }
        return out
    }

    /// The built-in strategy `strategy.name` names, with its parameters.
    /// - Throws: ``ConfigError`` when a `strategy.*` key set here is not a
    ///   parameter of that strategy.
    public func strategy() throws -> any GroupStrategy {
        do {
            return try strategyDescriptor.strategy(strategyParameterValues)
        } catch {
            // Without a file, the keys came from --set.
            throw ConfigError("\(source == ConfigFile().source ? "--set" : source): \(error)")
        }
    }

    public var policyLoss: PolicyLoss {
        var loss = PolicyLoss()
        loss.epsilonLow = double("loss.epsilon_low")
        loss.epsilonHigh = double("loss.epsilon_high")
        let c = double("loss.dual_clip")
        loss.dualClip = c > 1 ? c : nil
        loss.klBeta = double("loss.kl_beta")
        loss.klEstimator = KLEstimator(rawValue: string("loss.kl_estimator"))!
        loss.aggregation = LossAggregation(rawValue: string("loss.aggregation"))!
        loss.constantLength = int("loss.norm_length") > 0 ? int("loss.norm_length") : int("grpo.max_new_tokens")
        return loss
    }

    public var optimizer: OptimizerStep {
        var o = OptimizerStep(learningRate: double("optimizer.lr"))
        o.beta1 = double("optimizer.beta1")
        o.beta2 = double("optimizer.beta2")
        o.epsilon = double("optimizer.eps")
        o.weightDecay = double("optimizer.weight_decay")
        o.maxGradNorm = double("optimizer.max_grad_norm")
        return o
    }

    /// The step's settings, with `plugin` (a strategy plugin's strategy) or
    /// else the config's built-in strategy.
    /// - Throws: ``ConfigError`` for a strategy parameter the strategy lacks.
    public func grpoSettings(strategy plugin: (any GroupStrategy)? = nil) throws -> GRPOSettings {
        var g = GRPOSettings()
        g.groupSize = int("grpo.group_size")
        g.promptsPerStep = int("grpo.prompts_per_step")
        g.maxNewTokens = int("grpo.max_new_tokens")
        g.updatesPerBatch = int("grpo.updates_per_batch")
        g.minibatches = int("grpo.minibatches")
        g.logSamples = int("run.log_samples")
        g.maxResampleRounds = int("strategy.max_resample_rounds")
        g.strategy = try plugin ?? strategy()
        g.loss = policyLoss
        g.optimizer = optimizer
        return g
    }
}
