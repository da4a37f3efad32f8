// A plugin's JSON config: parsed once, every key checked, errors that name
// the key and what was expected.
import FoundationEssentials

/// Why a config was refused; `message` names the key.
public struct ConfigError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A JSON value.
public enum JSONValue: Decodable, Equatable, Sendable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// Parses JSON text.
    public static func parse(_ text: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }
}

/// The keys of a config object, read with type checks; unknown keys refused.
public struct PluginConfig {
    private let values: [String: JSONValue]

    /// Parses `text` (empty means `{}`) and refuses keys not in `allowed`.
    /// - Throws: ``ConfigError`` naming the unknown key and the accepted ones.
    public init(json text: String, allowed: [String]) throws(ConfigError) {
        let trimmed = text.drop { $0.isWhitespace }
        guard !trimmed.isEmpty else {
            values = [:]
            return
        }
        guard let parsed = try? JSONValue.parse(String(trimmed)), case .object(let object) = parsed else {
            throw ConfigError("config: expected a JSON object")
        }
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            let expected = allowed.isEmpty
                ? "this plugin takes no options" : "expected one of: \(allowed.joined(separator: ", "))"
            throw ConfigError("config: unknown key '\(unknown)' (\(expected))")
        }
        values = object
    }

    public func has(_ key: String) -> Bool { values[key] != nil }

    public func int(_ key: String, default value: Int, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let raw = values[key] else { return value }
        guard case .number(let number) = raw, number == number.rounded(), range.contains(Int(number)) else {
            throw ConfigError("config key '\(key)': expected an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(number)
    }

    public func double(_ key: String, default value: Double, in range: ClosedRange<Double>) throws(ConfigError) -> Double {
        guard let raw = values[key] else { return value }
        guard case .number(let number) = raw, range.contains(number) else {
            throw ConfigError("config key '\(key)': expected a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }

    /// A number or an array of numbers, each in `range`; a single number
    /// comes back as a one-element array.
    public func doubles(_ key: String, in range: ClosedRange<Double>) throws(ConfigError) -> [Double] {
        let items: [JSONValue] = switch values[key] {
        case .some(.array(let array)): array
        case .some(let single): [single]
        case .none: []
        }
        var out: [Double] = []
        for item in items {
            guard case .number(let number) = item, range.contains(number) else {
                throw ConfigError("config key '\(key)': expected a number or an array of numbers in \(range.lowerBound)...\(range.upperBound)")
            }
            out.append(number)
        }
        return out
    }

    public func bool(_ key: String, default value: Bool) throws(ConfigError) -> Bool {
        guard let raw = values[key] else { return value }
        guard case .bool(let flag) = raw else { throw ConfigError("config key '\(key)': expected true or false") }
        return flag
    }

    public func string(_ key: String, default value: String?) throws(ConfigError) -> String? {
        guard let raw = values[key] else { return value }
        guard case .string(let text) = raw else { throw ConfigError("config key '\(key)': expected a string") }
        return text
    }
}
