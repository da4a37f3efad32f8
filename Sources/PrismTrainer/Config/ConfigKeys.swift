import PrismCore

/// Every key of a training config: its path, default, accepted values and
/// meaning. The single source for validation, `--set`, the resolved
/// `config.yaml` of a run, and `Documentation/Config.md`.
public struct ConfigKey: Sendable {
    public enum Kind: Sendable, Equatable {
        case int(ClosedRange<Int>)
        case double(ClosedRange<Double>)
        case bool
        case string
        case choice([String])
        /// A free-form object handed to a plugin as JSON.
        case pluginConfig
    }

    public var path: String
    public var kind: Kind
    public var defaultValue: String
    public var help: String

    /// The accepted values, for error messages and docs.
    public var accepted: String {
        switch kind {
        case .int(let r): "an integer in \(r.lowerBound)...\(r.upperBound)"
        case .double(let r): "a number in \(r.lowerBound)...\(r.upperBound)"
        case .bool: "true or false"
        case .string: "a string"
        case .choice(let values): "one of " + values.joined(separator: ", ")
        case .pluginConfig: "a mapping (passed to the plugin as JSON)"
        }
    }
}

extension ConfigKey {
    static func k(_ path: String, _ kind: Kind, _ value: String, _ help: String) -> ConfigKey {
        ConfigKey(path: path, kind: kind, defaultValue: value, help: help)
    }

    /// All keys, in the order of the resolved config.
    public static let all: [ConfigKey] = [
        k("seed", .int(0...Int(Int32.max)), "0", "Seed of the run: data order, sampling, initialisation."),
        k("run.steps", .int(0...1_000_000), "100", "GRPO steps to run."),
        k("run.checkpoint_every", .int(0...1_000_000), "25", "Write a checkpoint every N steps (0 = only at the end)."),
        k("run.eval_every", .int(0...1_000_000), "25", "Evaluate on data.eval every N steps (0 = only at the end)."),
        k("run.log_samples", .int(0...64), "4", "Completions per step written to samples.jsonl."),
        k("run.token_budget", .int(0...Int(Int32.max)), "0",
          "Stop after the step that spends this many tokens (generated, resampled, judged); 0 = no budget, run.steps only."),
        k("run.judge_token_cost", .double(0...1000), "1.0",
          "Budget tokens charged per token of a completion the judge reads (0 = a free judge)."),
        k("run.eval_at_start", .bool, "false", "Also evaluate before the first step (a step-0 metrics line)."),
        k("run.keep_checkpoints", .int(0...1_000_000), "3",
          "Keep the newest N checkpoints (plus those run.keep_checkpoint_every selects); 0 = keep every one."),
        k("run.keep_checkpoint_every", .int(0...1_000_000), "100",
          "Also keep the checkpoints of steps that are multiples of K (0 = none); used when run.keep_checkpoints > 0."),
        k("model.plugin", .string, "PrismTransformer", "Backend plugin: a product name (found next to prism) or a .so path."),
        k("model.config", .pluginConfig, "{}", "The backend plugin's JSON config (see Documentation/Plugins.md)."),
        k("model.checkpoint", .string, "", "Weights to start from (a safetensors file); empty = fresh initialisation."),
        k("model.isolation", .choice(["in-process", "process"]), "in-process",
          "Where the backend plugin runs: in this process, or in a runner process that may crash or hang without taking the run down."),
        k("model.timeout_s", .double(0...86_400), "0",
          "With isolation: process, the deadline of each backend call in seconds (0 = none); a call past it kills the runner."),
        k("sampler.plugin", .string, "PrismSampler", "Sampler plugin."),
        k("sampler.config", .pluginConfig, "{}", "The sampler's config; its temperature must equal grpo.temperature."),
        k("sampler.isolation", .choice(["in-process", "process"]), "in-process",
          "Where the sampler plugin runs: in this process, or in a runner process that may crash or hang without taking the run down."),
        k("sampler.timeout_s", .double(0...86_400), "60",
          "With isolation: process, the deadline of each sampler call in seconds (0 = none); a call past it kills the runner."),
        k("reward.plugin", .string, "PrismExactAnswer", "Reward plugin."),
        k("reward.config", .pluginConfig, "{}", "The reward plugin's config."),
        k("reward.function", .pluginConfig, "{}",
          "A bare C function as the reward instead of reward.plugin: {library, symbol, signature, correct_at} (see Documentation/Embedding.md)."),
        k("reward.isolation", .choice(["in-process", "process"]), "in-process",
          "Where the reward plugin runs: in this process, or in a runner process that may crash or hang without taking the run down."),
        k("reward.timeout_s", .double(0...86_400), "60",
          "With isolation: process, the deadline of each reward call in seconds (0 = none); a call past it kills the runner."),
        k("judge.plugin", .string, "PrismStepJudge", "Judge (feedback) plugin; empty = none (strategies that need one then fail)."),
        k("judge.config", .pluginConfig, "{}", "The judge's config."),
        k("judge.function", .pluginConfig, "{}",
          "A bare C function as the judge instead of judge.plugin: {library, symbol, signature} (see Documentation/Embedding.md)."),
        k("judge.isolation", .choice(["in-process", "process"]), "in-process",
          "Where the judge plugin runs: in this process, or in a runner process that may crash or hang without taking the run down."),
        k("judge.timeout_s", .double(0...86_400), "60",
          "With isolation: process, the deadline of each judge call in seconds (0 = none); a call past it kills the runner."),
        k("data.train", .string, "", "Training prompts (JSONL: prompt, answer, steps, metadata)."),
        k("data.eval", .string, "", "Held-out problems for evaluation; empty = no evaluation."),
        k("data.eval_problems", .int(0...1_000_000), "200", "Evaluate on at most this many held-out problems."),
        k("grpo.group_size", .int(1...1024), "8", "Completions per prompt (G)."),
        k("grpo.prompts_per_step", .int(1...100_000), "16", "Prompts per step, before resampling."),
        k("grpo.max_new_tokens", .int(1...100_000), "48", "Longest completion, in tokens."),
        k("grpo.temperature", .double(0.01...100), "1.0", "Sampling temperature, also used in log-probs and gradients."),
        k("grpo.updates_per_batch", .int(1...64), "1",
          "Passes over each batch (mu, TRL's num_iterations); > 1 makes the clipped ratio move away from 1."),
        k("grpo.minibatches", .int(1...4096), "1", "Optimizer steps per pass: the batch's completions split into this many parts."),
        k("strategy.name", .choice(StrategyRegistry.builtIn.names), "grpo",
          "Built-in strategy for all-negative groups (Documentation/Config.md#strategies lists each with its parameters)."),
        k("strategy.plugin", .string, "",
          "A prism.strategy/1 plugin to use instead of strategy.name; empty = the built-in one."),
        k("strategy.config", .pluginConfig, "{}", "The strategy plugin's config."),
        k("strategy.isolation", .choice(["in-process", "process"]), "in-process",
          "Where the strategy plugin runs: in this process, or in a runner process that may crash or hang without taking the run down."),
        k("strategy.timeout_s", .double(0...86_400), "60",
          "With isolation: process, the deadline of each strategy call in seconds (0 = none); a call past it kills the runner."),
    ] + strategyParameterKeys + [
        k("strategy.max_resample_rounds", .int(0...100), "3", "Resampling rounds per step before going on with what there is."),
        k("loss.epsilon_low", .double(0...1), "0.2", "Lower clip range of the ratio."),
        k("loss.epsilon_high", .double(0...10), "0.2", "Upper clip range of the ratio (DAPO: 0.28)."),
        k("loss.dual_clip", .double(0...1e6), "0", "Dual-clip constant c > 1; 0 = off."),
        k("loss.kl_beta", .double(0...1e3), "0", "Weight of KL(policy‖reference) in the loss; 0 = off."),
        k("loss.kl_estimator", .choice(["k1", "k2", "k3"]), "k3", "KL estimator."),
        k("loss.aggregation", .choice(LossAggregation.allCases.map(\.rawValue)), "token-mean", "How token losses are averaged."),
        k("loss.norm_length", .int(0...1_000_000), "0",
          "The constant length of seq-mean-token-sum-norm; 0 = grpo.max_new_tokens."),
        k("optimizer.lr", .double(0...1000), "2e-4", "Learning rate of the backend's optimizer (AdamW for the transformer)."),
        k("optimizer.beta1", .double(0...1), "0.9", "AdamW beta1."),
        k("optimizer.beta2", .double(0...1), "0.999", "AdamW beta2."),
        k("optimizer.eps", .double(0...1), "1e-8", "AdamW epsilon."),
        k("optimizer.weight_decay", .double(0...10), "0.0", "AdamW weight decay (matrices only)."),
        k("optimizer.max_grad_norm", .double(0...1e6), "1.0", "Clip the global gradient norm; 0 = off."),
        k("eval.k", .int(0...1024), "4", "Samples per problem for pass@k; 0 = greedy accuracy only."),
        k("eval.max_new_tokens", .int(1...100_000), "48", "Longest answer at evaluation."),
        k("eval.judge_config", .pluginConfig, "{}",
          "Config of a separate judge.plugin instance that scores evaluations (e.g. without noise); {} = the training judge."),
        k("sft.steps", .int(0...1_000_000), "0", "Supervised warm-start steps before GRPO (data.train's solutions)."),
        k("sft.batch_size", .int(1...100_000), "64", "Examples per SFT step."),
        k("sft.lr", .double(0...10), "1e-3", "SFT learning rate."),
        k("plugins.quarantine_after", .int(1...1000), "3",
          "An isolated plugin whose runner crashed or timed out this many times in a row gets no more calls in this run."),
    ]

    public static func named(_ path: String) -> ConfigKey? { all.first { $0.path == path } }

    /// `strategy.<parameter>` for every parameter of a built-in strategy;
    /// the default shown is the first strategy's that has it (a run uses
    /// its own strategy's default, see ``ConfigFile/value(_:)``).
    static var strategyParameterKeys: [ConfigKey] {
        StrategyRegistry.builtIn.parameters.map { parameter in
            let kind: Kind = switch parameter.kind {
            case .double(let range): .double(range)
            case .int(let range): .int(range)
            case .choice(let values): .choice(values)
            }
            return k("strategy." + parameter.name, kind, parameter.defaultValue, parameter.help)
        }
    }

    /// Whether `value` of this key is a file path: always for the data and
    /// checkpoint keys (when not empty), and for a plugin key when it names a
    /// library file (contains `/` or ends in `.so`) rather than a product.
    public func isPath(_ value: String) -> Bool {
        guard !value.isEmpty else { return false }
        switch path {
        case "data.train", "data.eval", "model.checkpoint": return true
        case "model.plugin", "sampler.plugin", "reward.plugin", "judge.plugin", "strategy.plugin":
            return value.contains("/") || value.hasSuffix(".so")
        default: return false
        }
    }

    /// Whether this key is a parameter of the built-in strategies.
    public var isStrategyParameter: Bool {
        path.hasPrefix("strategy.") && StrategyRegistry.builtIn.parameters.contains { "strategy." + $0.name == path }
    }
}

extension ConfigKey {
    /// `Documentation/Config.md`'s generated part (`prism config keys`):
    /// every key, then each built-in strategy with its parameters, all
    /// from ``all`` and ``StrategyRegistry/builtIn``.
    public static var markdown: String {
        var out = "| key | default | accepted | meaning |\n|---|---|---|---|\n"
        for key in all {
            out += "| `\(key.path)` | `\(key.defaultValue)` | \(key.accepted) | \(key.help) |\n"
        }
        out += """

            ## Strategies

            `strategy.name` picks one of these; its parameters are the `strategy.<parameter>`
            keys above, with the defaults below (a parameter of another strategy is an error).
            `strategy.plugin` loads a `prism.strategy/1` plugin instead (Documentation/Extending.md).

            """
        for descriptor in StrategyRegistry.builtIn.descriptors {
            out += "\n### `\(descriptor.name)`\n\n\(descriptor.summary)"
            out += descriptor.needsJudge ? " Needs a judge (`judge.plugin`).\n\n" : "\n\n"
            guard !descriptor.parameters.isEmpty else {
                out += "No parameters.\n"
                continue
            }
            out += "| parameter | default | accepted | meaning |\n|---|---|---|---|\n"
            for parameter in descriptor.parameters {
                out += "| `strategy.\(parameter.name)` | `\(parameter.defaultValue)` | \(parameter.accepted) | \(parameter.help) |\n"
            }
        }
        return out
    }
}
