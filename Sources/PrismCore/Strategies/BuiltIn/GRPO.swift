extension StrategyDescriptor {
    /// Vanilla GRPO: group-normalised advantages; an all-negative group
    /// learns nothing.
    public static let grpo = StrategyDescriptor(
        name: "grpo", summary: "Group-normalised advantages; all-negative groups learn nothing.",
        needsJudge: false, parameters: [.scale, .filter]
    ) { p in
        Strategy(estimator: .grpo(scale: p.scale), filter: p.filterRule)
    }
}
