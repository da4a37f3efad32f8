extension StrategyDescriptor {
    /// Dr. GRPO: no division by the group's std.
    public static let drGRPO = StrategyDescriptor(
        name: "dr-grpo", summary: "r - mean(r), no std division (Dr. GRPO).",
        needsJudge: false, parameters: [.filter]
    ) { p in
        Strategy(estimator: .grpo(scale: .none), filter: p.filterRule)
    }
}
