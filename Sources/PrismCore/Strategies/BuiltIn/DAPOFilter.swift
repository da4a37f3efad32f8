extension StrategyDescriptor {
    /// DAPO's dynamic sampling: groups without signal are resampled.
    public static let dapoFilter = StrategyDescriptor(
        name: "dapo-filter", summary: "GRPO; all-wrong and all-right groups are resampled (DAPO dynamic sampling).",
        needsJudge: false, parameters: [.scale, .filter.defaulting(to: "uniform")]
    ) { p in
        Strategy(estimator: .grpo(scale: p.scale), filter: p.filterRule)
    }
}
