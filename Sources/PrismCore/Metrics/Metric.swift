/// Every metric a step can write to `metrics.jsonl`: the one definition of
/// each name and its meaning (Documentation/Training.md's table is
/// generated from it). Names follow the peers (TRL, verl) where they exist.
public enum Metric: String, CaseIterable, Sendable {
    // In the order of a metrics.jsonl line.
    case groupsTotal = "groups/total"
    case groupsAllNegative = "groups/all_negative"
    case groupsAllPositive = "groups/all_positive"
    case groupsMixed = "groups/mixed"
    case groupsNotApplicable = "groups/not_applicable"
    case groupsDiversified = "groups/diversified"
    case groupsZeroAdvantage = "groups/zero_advantage"
    case groupsDropped = "groups/dropped"
    case responsesDiversified = "responses/diversified"
    case rewardsNotApplicable = "rewards/not_applicable"
    case reward = "reward"
    case rewardStd = "reward_std"
    case accuracy = "accuracy"
    case advantagesMean = "advantages/mean"
    case advantagesMin = "advantages/min"
    case advantagesMax = "advantages/max"
    case samplingResampled = "sampling/resampled"
    case samplingRounds = "sampling/rounds"
    case samplingCapReached = "sampling/cap_reached"
    case samplingGroups = "sampling/groups"
    case samplingAllNegative = "sampling/all_negative"
    case feedbackLatencyMs = "feedback/latency_ms"
    case feedbackErrors = "feedback/errors"
    case feedbackJudgedTokens = "feedback/judged_tokens"
    case feedbackUnlocated = "feedback/unlocated"
    case rewardErrors = "reward/errors"
    case strategyErrors = "strategy/errors"
    case completionsMeanLength = "completions/mean_length"
    case tokensGenerated = "tokens/generated"
    case loss = "loss"
    case kl = "kl"
    case clipRatioLow = "clip_ratio/low"
    case clipRatioHigh = "clip_ratio/high"
    case clipRatioDual = "clip_ratio/dual"
    case ratioMean = "ratio/mean"
    case tokens = "tokens"
    case lossClipFraction = "loss/clip_fraction"
    case lossApproxKl = "loss/approx_kl"
    case gradNorm = "grad_norm"
    case updates = "updates"
    case timeGenerationS = "time/generation_s"
    case timeScoringS = "time/scoring_s"
    case timeUpdateS = "time/update_s"
    case timeStepS = "time/step_s"
    case tokensPerS = "tokens_per_s"
    case budgetSpent = "budget/spent"
    case evalAccuracy = "eval/accuracy"
    case evalAccuracyStderr = "eval/accuracy_stderr"
    case evalProcessAccuracy = "eval/process_accuracy"
    case evalRts = "eval/rts"
    case evalPassAtK = "eval/pass_at_k"

    /// The name in `metrics.jsonl`.
    public var name: String { rawValue }

    /// What it measures.
    public var help: String {
        switch self {
        case .groupsTotal: "Groups kept for the update (after filtering and resampling)."
        case .groupsAllNegative: "Kept groups in which no applicable answer is correct."
        case .groupsAllPositive: "Kept groups in which every applicable answer is correct."
        case .groupsMixed: "Kept groups with right and wrong answers."
        case .groupsNotApplicable: "Kept groups with no applicable reward (always 0: such groups are dropped)."
        case .groupsDiversified: "Groups in which the strategy re-rewarded at least one answer (SGPO)."
        case .groupsZeroAdvantage: "Kept groups in which every advantage is 0: they teach nothing."
        case .groupsDropped: "Groups left out this step (by the strategy, the judge, no applicable reward, or the resampling cap)."
        case .responsesDiversified: "Answers the strategy re-rewarded."
        case .rewardsNotApplicable: "Answers scored this step whose reward is NaN (not applicable), those of dropped groups included; a failed reward call makes its whole batch NaN."
        case .reward: "Mean applicable reward of the kept groups, before the strategy's shaping."
        case .rewardStd: "Its standard deviation (Bessel-corrected)."
        case .accuracy: "Share of correct answers among the applicable ones of the kept groups."
        case .advantagesMean: "Mean advantage per answer."
        case .advantagesMin: "Smallest advantage."
        case .advantagesMax: "Largest advantage."
        case .samplingResampled: "Groups replaced by fresh ones this step."
        case .samplingRounds: "Generation rounds (1 + resampling rounds)."
        case .samplingCapReached: "1 when groups still wanted resampling at strategy.max_resample_rounds (they were dropped), else 0."
        case .samplingGroups: "Every group generated this step, resampled ones included."
        case .samplingAllNegative: "How many of those were all-negative (the kept-group counts hide what a filter dropped)."
        case .feedbackLatencyMs: "Mean time of a judge call."
        case .feedbackErrors: "Judge calls that failed or answered out of range; their groups stay undiversified and the first message is logged."
        case .feedbackJudgedTokens: "Tokens of the completions the judge read."
        case .feedbackUnlocated: "Re-rewarded answers whose first error the judge did not locate in the text, so strategy.credit prefix or split gave them sequence credit."
        case .rewardErrors: "Reward calls that failed or answered out of range; their batches count as not applicable."
        case .strategyErrors: "Strategy plugin calls that failed: a failed judge question leaves its group unjudged, a failed disposition drops its group, failed advantages skip the update."
        case .completionsMeanLength: "Mean completion length of the kept groups, in tokens."
        case .tokensGenerated: "Tokens generated this step, resampled groups included."
        case .loss: "The clipped objective's loss (mean over the step's updates)."
        case .kl: "Mean KL(policy || reference) estimate per token, when loss.kl_beta > 0."
        case .clipRatioLow: "Share of tokens with A < 0 whose ratio fell below 1 - loss.epsilon_low."
        case .clipRatioHigh: "Share of tokens with A > 0 whose ratio rose above 1 + loss.epsilon_high."
        case .clipRatioDual: "Share of tokens cut by the dual clip."
        case .ratioMean: "Mean ratio of policy to sampling policy per token (1 on the first pass)."
        case .tokens: "Completion tokens in the update."
        case .lossClipFraction: "Share of tokens whose gradient any clip cut (low + high + dual)."
        case .lossApproxKl: "Mean (ratio - 1) - log(ratio) per token: how far the updates moved the policy from the sampling one (0 when grpo.updates_per_batch = 1 and grpo.minibatches = 1)."
        case .gradNorm: "Global gradient norm before clipping (mean over the updates)."
        case .updates: "Optimizer steps this step (grpo.updates_per_batch x grpo.minibatches; 0 lines have none)."
        case .timeGenerationS: "Seconds spent generating."
        case .timeScoringS: "Seconds spent scoring and judging."
        case .timeUpdateS: "Seconds spent in the updates."
        case .timeStepS: "Seconds for the whole step."
        case .tokensPerS: "Generated tokens per second of the step."
        case .budgetSpent: "Cumulative budget tokens: tokens/generated + run.judge_token_cost x feedback/judged_tokens."
        case .evalAccuracy: "Held-out greedy accuracy (evaluation steps only)."
        case .evalAccuracyStderr: "Its standard error."
        case .evalProcessAccuracy: "Held-out greedy answers the evaluation judge finds right at every step, ending after the answer with the end token (process-verified; needs eval.judge_plugin)."
        case .evalRts: "Held-out mean step score (the evaluation judge's RTS)."
        case .evalPassAtK: "Held-out pass@k with eval.k samples per problem."
        }
    }

    /// The metrics table of Documentation/Training.md.
    public static var markdown: String {
        "| metric | meaning |\n|---|---|\n" + allCases.map { "| `\($0.name)` | \($0.help) |\n" }.joined()
    }
}

extension Dictionary where Key == String, Value == Double {
    /// A metric of a `metrics.jsonl` line read back.
    public subscript(_ metric: Metric) -> Double? { self[metric.rawValue] }
}
