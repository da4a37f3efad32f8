extension StrategyDescriptor {
    /// Negative-sample reinforcement / W-REINFORCE: no baseline.
    public static let nsr = StrategyDescriptor(
        name: "nsr", summary: "No baseline: +lambda for a correct answer, -1 for a wrong one.",
        needsJudge: false,
        parameters: [
            StrategyParameter("nsr_lambda", .double(0...1e6), "0.1", "The advantage of a correct answer under NSR (wrong = -1)."),
            .filter,
        ]
    ) { p in
        Strategy(estimator: .nsr(lambda: p.double("nsr_lambda")), filter: p.filterRule)
    }
}
