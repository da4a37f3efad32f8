/// A call or a step stopped because the run was asked to stop (Ctrl-C,
/// SIGTERM, an embedding program's cancel). Never a plugin failure: the
/// trainer rethrows it wherever it would otherwise count a failed call.
public struct Cancelled: Error, CustomStringConvertible, Sendable, Equatable {
    /// What was stopped, e.g. "reward.score".
    public var call: String

    public init(_ call: String = "step") { self.call = call }

    public var description: String { "\(call): cancelled (the run was asked to stop)" }
}
