import CPrismEmbed
import Foundation
import PrismCore
import PrismHost
import PrismTrainer
import Synchronization

// The objects behind embed.h's opaque handles, and the conversions every
// entry point shares. A handle is a retained Swift object (Unmanaged); its
// _free function releases it.

/// `prism_error`: a status code and the one line the CLI would print.
final class EmbedError {
    let code: Int32
    let message: UnsafeMutablePointer<CChar>

    init(code: Int32, message: String) {
        self.code = code
        self.message = strdup(message)
    }

    deinit { free(message) }
}

/// `prism_config`.
final class EmbedConfig {
    var file: ConfigFile
    init(_ file: ConfigFile) { self.file = file }
}

/// `prism_plugin`.
final class EmbedPlugin {
    let library: PluginLibrary
    init(_ library: PluginLibrary) { self.library = library }
}

/// `prism_reward`.
final class EmbedReward {
    let reward: any RewardFunction
    init(_ reward: any RewardFunction) { self.reward = reward }
}

/// `prism_judge`.
final class EmbedJudge {
    let judge: any FeedbackGenerator
    init(_ judge: any FeedbackGenerator) { self.judge = judge }
}

/// A run's cancel request: set from any thread, consumed by the call it stops.
final class CancelFlag: Sendable {
    private let requested = Atomic<Bool>(false)
    func set() { requested.store(true, ordering: .sequentiallyConsistent) }
    var isSet: Bool { requested.load(ordering: .sequentiallyConsistent) }
    /// Whether a request was pending; clears it.
    func consume() -> Bool { requested.exchange(false, ordering: .sequentiallyConsistent) }
}

/// `prism_run`: the config, the trainer and its open session.
final class EmbedRun {
    let config: ConfigFile
    let session: TrainingSession
    let cancel: CancelFlag
    let plugins: [String: String?]
    /// The message of the step that failed; the run takes no step after it.
    var failure: String?

    init(config: ConfigFile, session: TrainingSession, cancel: CancelFlag, plugins: [String: String?]) {
        self.config = config
        self.session = session
        self.cancel = cancel
        self.plugins = plugins
    }
}

/// The handle of a new object (retained; the _free function releases it).
func retained(_ object: AnyObject) -> OpaquePointer {
    OpaquePointer(Unmanaged.passRetained(object).toOpaque())
}

/// The object behind a handle, or nil for NULL.
func object<T: AnyObject>(_ handle: OpaquePointer?, as _: T.Type) -> T? {
    guard let handle else { return nil }
    return Unmanaged<T>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

/// Releases a handle's object (NULL ignored).
func release<T: AnyObject>(_ handle: OpaquePointer?, as _: T.Type) {
    guard let handle else { return }
    Unmanaged<T>.fromOpaque(UnsafeRawPointer(handle)).release()
}

/// A misuse of the API (NULL object, bad argument), reported as an error.
struct ArgumentError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A cancelled call.
struct CancelledCall: Error, CustomStringConvertible {
    let description: String
}

/// An object that cannot do what was asked now.
struct StateError: Error, CustomStringConvertible {
    let description: String
}

/// The status and message of an error, as the CLI classifies and prints it.
func classify(_ error: any Error) -> (Int32, String) {
    switch error {
    case let error as ArgumentError: (PRISM_EMBED_ERROR_INVALID_ARGUMENT, error.description)
    case let error as ConfigError: (PRISM_EMBED_ERROR_CONFIG, "\(error)")
    case let error as DataError: (PRISM_EMBED_ERROR_DATA, "\(error)")
    case let error as PluginError: (PRISM_EMBED_ERROR_PLUGIN, "\(error)")
    case let error as RunFailure: (PRISM_EMBED_ERROR_RUN, "\(error)")
    case let error as TrainerError: (PRISM_EMBED_ERROR_RUN, "\(error)")
    case let error as CancelledCall: (PRISM_EMBED_ERROR_CANCELLED, error.description)
    case let error as Cancelled: (PRISM_EMBED_ERROR_CANCELLED, "cancelled at \(error.call)")
    case let error as StateError: (PRISM_EMBED_ERROR_STATE, error.description)
    default: (PRISM_EMBED_ERROR_INTERNAL, "\(error)")
    }
}

/// Runs `body`; on a throw stores a new error in `*out` (when given) and
/// returns its status.
func guarded(_ out: UnsafeMutablePointer<OpaquePointer?>?, _ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return PRISM_EMBED_OK
    } catch {
        let (code, message) = classify(error)
        out?.pointee = retained(EmbedError(code: code, message: message))
        return code
    }
}

/// A C string argument that must be present.
func cString(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> String {
    guard let pointer else { throw ArgumentError("\(name): NULL where a string is needed") }
    guard let value = String(validatingCString: pointer) else { throw ArgumentError("\(name): not valid UTF-8") }
    return value
}

/// A C string argument where NULL reads as "".
func optionalText(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> String {
    pointer == nil ? "" : try cString(pointer, name)
}

/// The object behind a handle that must not be NULL.
func required<T: AnyObject>(_ handle: OpaquePointer?, _ type: T.Type, _ name: String) throws -> T {
    guard let found = object(handle, as: type) else { throw ArgumentError("\(name): NULL where an object is needed") }
    return found
}

/// Stores a new C string (malloc'd, freed by prism_string_free) in `*out`.
func give(_ value: String, to out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) throws {
    guard let out else { throw ArgumentError("out: NULL where a place for the result is needed") }
    out.pointee = strdup(value)
}

/// A JSON text of `value` (sorted keys, slashes unescaped).
func json(_ value: Any) throws -> String {
    String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes]),
           as: UTF8.self)
}

/// A double for JSON: NaN and infinities become null.
func number(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
