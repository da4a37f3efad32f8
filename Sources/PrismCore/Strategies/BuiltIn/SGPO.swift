extension StrategyParameter {
    static let map = StrategyParameter(
        "map", .choice(["sigmoid", "raw", "linear"]), "sigmoid", "SGPO map from judge score (RTS) to reward.")
    static let beta = StrategyParameter("beta", .double(0...1e4), "5.0", "SGPO sigmoid steepness.")
    static let gamma = StrategyParameter("gamma", .double(-10...10), "0.5", "SGPO sigmoid midpoint.")
    static let ceiling = StrategyParameter("ceiling", .double(0...1), "0.9", "Top of SGPO's linear map.")
    static let scope = StrategyParameter(
        "scope", .choice(DiversificationScope.allCases.map(\.rawValue)), "all_negative",
        "Which wrong answers SGPO re-rewards: those of all-negative groups (the paper) or all.")
    static let credit = StrategyParameter(
        "credit", .choice(CreditRule.allCases.map(\.rawValue)), "sequence",
        "Which tokens of a re-rewarded answer its advantage reaches: all (sequence, the paper), those before the "
            + "judge's first error (prefix), or positive before / negative from it (split). Math.md, credit rules.")
}

extension StrategyDescriptor {
    /// SGPO (arXiv 2505.11595): in all-negative groups the judge's step
    /// score becomes a graded reward, then GRPO advantages.
    public static let sgpo = StrategyDescriptor(
        name: "sgpo", summary: "GRPO, with the judge's step scores mapped to graded rewards in all-negative groups.",
        needsJudge: true, parameters: [.scale, .filter, .map, .beta, .gamma, .ceiling, .scope, .credit]
    ) { p in
        let map: RTSMap = switch p.string("map") {
        case "raw": .raw
        case "linear": .linear(ceiling: p.double("ceiling"))
        default: .sigmoid(beta: p.double("beta"), gamma: p.double("gamma"))
        }
        return Strategy(
            estimator: .grpo(scale: p.scale),
            diversification: Diversification(map: map, scope: DiversificationScope(rawValue: p.string("scope"))!),
            filter: p.filterRule, credit: CreditRule(rawValue: p.string("credit"))!)
    }
}
