import PrismCore

extension ConfigFile {
    /// The all-negative strategy: the preset refined by the strategy.* keys.
    public var strategy: Strategy {
        var s = Strategy.preset(string("strategy.name"))!
        switch string("strategy.estimator") {
        case "grpo":
            s.estimator = .grpo(scale: AdvantageScale(rawValue: string("strategy.scale"))!)
        case "rloo": s.estimator = .rloo
        case "ngrpo": s.estimator = .ngrpo(maxReward: double("strategy.ngrpo_max_reward"))
        case "nsr": s.estimator = .nsr(lambda: double("strategy.nsr_lambda"))
        default:
            // The preset's estimator, with its parameters from the keys.
            switch s.estimator {
            case .grpo(let scale):
                s.estimator = .grpo(scale: values["strategy.scale"].flatMap { AdvantageScale(rawValue: $0) } ?? scale)
            case .ngrpo: s.estimator = .ngrpo(maxReward: double("strategy.ngrpo_max_reward"))
            case .nsr: s.estimator = .nsr(lambda: double("strategy.nsr_lambda"))
            default: break
            }
        }
        if s.diversification != nil {
            let map: RTSMap = switch string("strategy.map") {
            case "raw": .raw
            case "linear": .linear(ceiling: double("strategy.ceiling"))
            default: .sigmoid(beta: double("strategy.beta"), gamma: double("strategy.gamma"))
            }
            s.diversification = Diversification(map: map, scope: DiversificationScope(rawValue: string("strategy.scope"))!)
        }
        let rule = string("strategy.filter") == "preset" ? s.filter.rule : GroupFilter.Rule(rawValue: string("strategy.filter"))!
        s.filter = GroupFilter(rule: rule, maxResampleRounds: int("strategy.max_resample_rounds"))
        return s
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

    public var grpoSettings: GRPOSettings {
        var g = GRPOSettings()
        g.groupSize = int("grpo.group_size")
        g.promptsPerStep = int("grpo.prompts_per_step")
        g.maxNewTokens = int("grpo.max_new_tokens")
        g.strategy = strategy
        g.loss = policyLoss
        g.optimizer = optimizer
        return g
    }
}
