/// Parameters several built-in strategies share: one definition each.
extension StrategyParameter {
    /// GRPO's std scaling.
    public static let scale = StrategyParameter(
        "scale", .choice(AdvantageScale.allCases.map(\.rawValue)), "group",
        "GRPO std scaling: group, batch (TRL's scale_rewards=batch) or none (Dr. GRPO).")
    /// Which groups the strategy resamples (DAPO's dynamic sampling).
    public static let filter = StrategyParameter(
        "filter", .choice(GroupFilter.Rule.allCases.map(\.rawValue)), "none",
        "Groups to resample: none, uniform (all wrong or all right: DAPO) or all_negative.")
}

extension StrategyParameters {
    var scale: AdvantageScale { AdvantageScale(rawValue: string("scale"))! }
    var filterRule: GroupFilter.Rule { GroupFilter.Rule(rawValue: string("filter"))! }
}
