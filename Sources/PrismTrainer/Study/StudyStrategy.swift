import Foundation
import PrismCore

/// A strategy compared in the study: a built-in strategy with parameter
/// assignments (`strategy.*` keys).
public struct StudyStrategy: Sendable, Equatable {
    public var name: String
    public var assignments: [String]

    /// Whether it asks the judge (then judge noise applies to it): from the
    /// registry's descriptor of the strategy it names.
    public var usesJudge: Bool {
        let named = assignments.first { $0.hasPrefix("strategy.name=") }.map { String($0.dropFirst("strategy.name=".count)) }
        return named.flatMap { StrategyRegistry.builtIn.descriptor($0)?.needsJudge } ?? false
    }

    /// Every built-in strategy with its defaults, and after `sgpo` its other
    /// two RTS maps and credit rules.
    public static let all: [StudyStrategy] = StrategyRegistry.builtIn.names.flatMap { name in
        let plain = StudyStrategy(name: name, assignments: ["strategy.name=\(name)"])
        guard name == "sgpo" else { return [plain] }
        return [plain] + ["raw", "linear"].map {
            StudyStrategy(name: "sgpo-\($0)", assignments: ["strategy.name=sgpo", "strategy.map=\($0)"])
        } + CreditRule.allCases.filter { $0 != .sequence }.map {
            StudyStrategy(name: "sgpo-\($0.rawValue)", assignments: ["strategy.name=sgpo", "strategy.credit=\($0.rawValue)"])
        }
    }

    /// The transformer study's comparison: GRPO, DAPO filtering, and SGPO
    /// with each credit rule.
    public static let headline: [StudyStrategy] = ["grpo", "dapo-filter", "sgpo", "sgpo-prefix", "sgpo-split"].map { name in
        all.first { $0.name == name }!
    }

    public static var names: [String] { all.map(\.name) }

    /// The strategies named in a comma-separated list ("all" = every one).
    /// - Throws: naming the unknown name and the accepted ones.
    public static func parse(_ list: String) throws -> [StudyStrategy] {
        if list == "all" { return all }
        return try list.split(separator: ",").map { raw in
            let name = raw.trimmingCharacters(in: .whitespaces)
            guard let found = all.first(where: { $0.name == name }) else {
                throw TrainerError("unknown strategy '\(name)'; expected all or a comma-separated list of: \(names.joined(separator: ", "))")
            }
            return found
        }
    }
}
