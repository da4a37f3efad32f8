/// One parameter of a strategy: its name (the config key is
/// `strategy.<name>`), kind, default and meaning.
public struct StrategyParameter: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case double(ClosedRange<Double>)
        case int(ClosedRange<Int>)
        case choice([String])
    }

    public var name: String
    public var kind: Kind
    /// The default, as config text.
    public var defaultValue: String
    public var help: String

    public init(_ name: String, _ kind: Kind, _ defaultValue: String, _ help: String) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.help = help
    }

    /// The same parameter with another default.
    public func defaulting(to value: String) -> StrategyParameter {
        var copy = self
        copy.defaultValue = value
        return copy
    }

    /// Whether `value` is acceptable.
    public func accepts(_ value: String) -> Bool {
        switch kind {
        case .double(let range): Double(value).map(range.contains) ?? false
        case .int(let range): Int(value).map(range.contains) ?? false
        case .choice(let values): values.contains(value)
        }
    }

    /// The accepted values, for error messages and docs.
    public var accepted: String {
        switch kind {
        case .double(let r): "a number in \(r.lowerBound)...\(r.upperBound)"
        case .int(let r): "an integer in \(r.lowerBound)...\(r.upperBound)"
        case .choice(let values): "one of " + values.joined(separator: ", ")
        }
    }
}

/// The values of a strategy's parameters (defaults filled in), checked
/// against its ``StrategyParameter``s.
public struct StrategyParameters: Sendable, Equatable {
    public private(set) var values: [String: String]

    /// - Throws: ``StrategyError`` naming a parameter the strategy does not
    ///   have or a value it does not accept.
    public init(_ descriptor: StrategyDescriptor, values given: [String: String] = [:]) throws(StrategyError) {
        var values: [String: String] = [:]
        for parameter in descriptor.parameters { values[parameter.name] = parameter.defaultValue }
        for (name, value) in given.sorted(by: { $0.key < $1.key }) {
            guard let parameter = descriptor.parameter(name) else {
                let known = descriptor.parameters.map(\.name)
                throw StrategyError("strategy.\(name) is not a parameter of strategy '\(descriptor.name)' "
                    + "(its parameters: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
            }
            guard parameter.accepts(value) else {
                throw StrategyError("strategy.\(name): expected \(parameter.accepted), got '\(value)'")
            }
            values[name] = value
        }
        self.values = values
    }

    public func double(_ name: String) -> Double { Double(values[name]!)! }
    public func int(_ name: String) -> Int { Int(values[name]!)! }
    public func string(_ name: String) -> String { values[name]! }
}

/// A strategy that cannot be built or failed.
public struct StrategyError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Everything the host knows about one strategy: its name, what it does,
/// whether it needs the judge, its parameters, and how to build it. Built-in
/// strategies are descriptors in `Strategies/BuiltIn/` (one file each);
/// a strategy plugin is registered as a descriptor too, by the host.
public struct StrategyDescriptor: Sendable {
    public var name: String
    /// One line: what it does with all-negative groups.
    public var summary: String
    /// Whether it asks the judge (a run without `judge.plugin` is refused).
    public var needsJudge: Bool
    public var parameters: [StrategyParameter]
    /// Builds the strategy from checked parameter values.
    public var make: @Sendable (StrategyParameters) throws -> any GroupStrategy

    public init(name: String, summary: String, needsJudge: Bool, parameters: [StrategyParameter],
                make: @escaping @Sendable (StrategyParameters) throws -> any GroupStrategy) {
        self.name = name
        self.summary = summary
        self.needsJudge = needsJudge
        self.parameters = parameters
        self.make = make
    }

    public func parameter(_ name: String) -> StrategyParameter? { parameters.first { $0.name == name } }

    /// The strategy with `values` (by parameter name) over the defaults.
    /// - Throws: ``StrategyError`` for an unknown parameter or a bad value.
    public func strategy(_ values: [String: String] = [:]) throws -> any GroupStrategy {
        try make(try StrategyParameters(self, values: values))
    }
}

/// The strategies a run can name.
public struct StrategyRegistry: Sendable {
    public private(set) var descriptors: [StrategyDescriptor]

    /// The built-in strategies, in the order the docs and the study list them.
    /// Adding one: a file in `Strategies/BuiltIn/` and its line here.
    public static let builtIn = StrategyRegistry(descriptors: [
        .grpo, .sgpo, .dapoFilter, .nsr, .ngrpo, .rloo, .drGRPO,
    ])

    public init(descriptors: [StrategyDescriptor]) {
        self.descriptors = descriptors
    }

    public var names: [String] { descriptors.map(\.name) }

    public func descriptor(_ name: String) -> StrategyDescriptor? { descriptors.first { $0.name == name } }

    /// Adds a descriptor (a plugin strategy).
    /// - Throws: when its name is taken.
    public mutating func register(_ descriptor: StrategyDescriptor) throws(StrategyError) {
        guard self.descriptor(descriptor.name) == nil else {
            throw StrategyError("a strategy named '\(descriptor.name)' is already registered")
        }
        descriptors.append(descriptor)
    }

    /// Every parameter name any strategy has, first definition first (the
    /// config keys `strategy.<name>`). A name means the same kind everywhere
    /// (a test checks); defaults may differ per strategy.
    public var parameters: [StrategyParameter] {
        var seen: [StrategyParameter] = []
        for parameter in descriptors.flatMap(\.parameters) where !seen.contains(where: { $0.name == parameter.name }) {
            seen.append(parameter)
        }
        return seen
    }
}
