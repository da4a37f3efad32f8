extension StrategyDescriptor {
    /// NGRPO: a virtual best response in the group statistics.
    public static let ngrpo = StrategyDescriptor(
        name: "ngrpo", summary: "GRPO statistics with a virtual response of the maximum reward.",
        needsJudge: false,
        parameters: [
            StrategyParameter("ngrpo_max_reward", .double(-1e6...1e6), "1.0", "The virtual reward of NGRPO."),
            .filter,
        ]
    ) { p in
        Strategy(estimator: .ngrpo(maxReward: p.double("ngrpo_max_reward")), filter: p.filterRule)
    }
}
