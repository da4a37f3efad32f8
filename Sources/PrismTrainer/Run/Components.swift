import PrismCore

/// The plugins a run uses, already loaded (the CLI loads them with
/// PrismHost; tests may pass anything that conforms).
public struct Components {
    public var backend: any ComputeBackend
    /// The training sampler (its temperature equals grpo.temperature).
    public var sampler: any Sampler
    /// A greedy sampler, for evaluation.
    public var greedySampler: any Sampler
    public var reward: any RewardFunction
    public var judge: (any FeedbackGenerator)?
    /// The judge that scores evaluations (the step score); by default the
    /// training judge. A study of judge noise evaluates with a clean one.
    public var evaluationJudge: (any FeedbackGenerator)?
    /// A strategy plugin (`strategy.plugin`) in place of the config's
    /// built-in strategy; nil = the built-in one.
    public var strategy: (any GroupStrategy)?

    public init(backend: any ComputeBackend, sampler: any Sampler, greedySampler: any Sampler,
                reward: any RewardFunction, judge: (any FeedbackGenerator)?,
                evaluationJudge: (any FeedbackGenerator)? = nil, strategy: (any GroupStrategy)? = nil) {
        self.strategy = strategy
        self.backend = backend
        self.sampler = sampler
        self.greedySampler = greedySampler
        self.reward = reward
        self.judge = judge
        self.evaluationJudge = evaluationJudge ?? judge
    }
}
