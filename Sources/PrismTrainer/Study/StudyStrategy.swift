import Foundation

/// A strategy compared in the study: a preset plus refinements, as config
/// assignments (`strategy.*` keys).
public struct StudyStrategy: Sendable, Equatable {
    public var name: String
    public var assignments: [String]
    /// Whether it asks the judge (then judge noise applies to it).
    public var usesJudge: Bool

    /// Every strategy of the study: the presets, and SGPO with each map.
    public static let all: [StudyStrategy] = [
        StudyStrategy(name: "grpo", assignments: ["strategy.name=grpo"], usesJudge: false),
        StudyStrategy(name: "sgpo", assignments: ["strategy.name=sgpo", "strategy.map=sigmoid"], usesJudge: true),
        StudyStrategy(name: "sgpo-raw", assignments: ["strategy.name=sgpo", "strategy.map=raw"], usesJudge: true),
        StudyStrategy(name: "sgpo-linear", assignments: ["strategy.name=sgpo", "strategy.map=linear"], usesJudge: true),
        StudyStrategy(name: "dapo-filter", assignments: ["strategy.name=dapo-filter"], usesJudge: false),
        StudyStrategy(name: "nsr", assignments: ["strategy.name=nsr"], usesJudge: false),
        StudyStrategy(name: "ngrpo", assignments: ["strategy.name=ngrpo"], usesJudge: false),
        StudyStrategy(name: "rloo", assignments: ["strategy.name=rloo"], usesJudge: false),
        StudyStrategy(name: "dr-grpo", assignments: ["strategy.name=dr-grpo"], usesJudge: false),
    ]

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
