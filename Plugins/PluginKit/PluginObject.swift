// The instance side of a Swift plugin: an object behind the opaque pointer
// that `create` returns, whose calls turn thrown errors into a status and a
// last_error message.
import CPrism

/// A failed call: the status to return and the message for last_error.
public struct PluginFailure: Error, CustomStringConvertible {
    public var status: prism_status
    public var message: String

    public init(status: prism_status, message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { message }
}

/// A plugin instance that keeps its last error message for last_error.
public protocol PluginObject: AnyObject {
    var lastError: ErrorText { get }
}

extension PluginObject {
    /// The instance behind a pointer made by `Unmanaged.passRetained`.
    public static func from(_ raw: UnsafeMutableRawPointer?) -> Self {
        Unmanaged<Self>.fromOpaque(raw!).takeUnretainedValue()
    }

    /// Runs `body` on the instance; a ``PluginFailure`` becomes its status,
    /// any other error PRISM_E_INTERNAL, and the message goes to last_error.
    public static func call(_ raw: UnsafeMutableRawPointer?, _ body: (Self) throws -> prism_status) -> prism_status {
        let object = from(raw)
        do {
            return try body(object)
        } catch let error as PluginFailure {
            object.lastError.set(error.message)
            return error.status
        } catch {
            object.lastError.set("\(error)")
            return PRISM_E_INTERNAL
        }
    }
}

extension PluginObject {
    /// The entry's `destroy`: releases the instance `create` retained.
    public static func destroy(_ raw: UnsafeMutableRawPointer?) {
        guard let raw else { return }
        Unmanaged<Self>.fromOpaque(raw).release()
    }

    /// The entry's `last_error`: the instance's message, or with NULL the
    /// reason the calling thread's last `create` failed.
    public static func lastError(_ raw: UnsafeMutableRawPointer?, creating errors: CreateErrors) -> prism_str {
        raw == nil ? errors.get() : from(raw).lastError.prismStr
    }
}

extension CreateErrors {
    /// The entry's `create`: stores the new instance in `out` (retained), or
    /// keeps the error for last_error(NULL) and returns PRISM_E_CONFIG for a
    /// ``ConfigError`` and `failure` for anything else.
    public func create(_ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>, failure: prism_status = PRISM_E_INTERNAL,
                       _ make: () throws -> AnyObject) -> prism_status {
        do {
            out.pointee = Unmanaged.passRetained(try make()).toOpaque()
            return PRISM_OK
        } catch let error as ConfigError {
            set(error.message)
            return PRISM_E_CONFIG
        } catch {
            set("\(error)")
            return failure
        }
    }
}
