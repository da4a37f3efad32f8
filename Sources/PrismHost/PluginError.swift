/// A plugin could not be loaded, instantiated or called.
///
/// Its description is one line naming the plugin file (or id) and the reason,
/// ready to show to a person.
public struct PluginError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What went wrong. A struct rather than an enum so cases can be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let fileMissing = Code("file-missing")
        public static let notSharedObject = Code("not-a-shared-object")
        public static let noEntrySymbol = Code("no-entry-symbol")
        public static let entryReturnedNull = Code("entry-returned-null")
        public static let abiMismatch = Code("abi-major-mismatch")
        public static let structTooSmall = Code("struct-too-small")
        public static let missingFunction = Code("missing-function")
        public static let interfaceNotProvided = Code("interface-not-provided")
        public static let createFailed = Code("create-failed")
        public static let callFailed = Code("call-failed")
        public static let invalidOutput = Code("invalid-output")
        /// The library's file or folder fails the loading rules (who may write it).
        public static let unsafeLocation = Code("unsafe-location")
        /// An isolated plugin's runner process died during a call.
        public static let crashed = Code("crashed")
        /// An isolated plugin's call passed its deadline; the runner was killed.
        public static let timedOut = Code("timed-out")
        /// An isolated plugin failed too often in a row; it gets no more calls.
        public static let quarantined = Code("quarantined")
        /// The runner process could not be started or spoke nonsense.
        public static let runnerFailed = Code("runner-failed")

        /// The code with this name (as sent between processes).
        public static func named(_ name: String) -> Code { Code(name) }
    }

    public let code: Code
    /// The plugin's file, or its id once loaded.
    public let plugin: String
    /// The reason, without the plugin name.
    public let reason: String

    public init(_ code: Code, plugin: String, reason: String) {
        self.code = code
        self.plugin = plugin
        self.reason = reason
    }

    public var description: String { "\(plugin): \(reason)" }
}
