extension StrategyDescriptor {
    /// REINFORCE leave-one-out.
    public static let rloo = StrategyDescriptor(
        name: "rloo", summary: "Leave-one-out baseline: r_i minus the mean of the others.",
        needsJudge: false, parameters: [.filter]
    ) { p in
        Strategy(estimator: .rloo, filter: p.filterRule)
    }
}
