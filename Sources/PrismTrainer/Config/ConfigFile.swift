import Foundation
import PrismCore
import Yams

/// A config could not be used; the description names the file and key path.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A config as flat dotted keys ("grpo.group_size" -> "8") plus the plugin
/// config objects (as JSON), read from YAML and `--set` overrides, checked
/// against ``ConfigKey/all``.
public struct ConfigFile: Sendable, Equatable {
    public private(set) var values: [String: String] = [:]
    /// "model.config" -> JSON object text.
    public private(set) var pluginConfigs: [String: String] = [:]
    /// Where it came from, for messages.
    public var source: String

    /// The defaults.
    public init() { source = "defaults" }

    /// Parses YAML text.
    /// - Throws: ``ConfigError`` for malformed YAML, unknown keys (with the
    ///   nearest valid names) and bad values (with the accepted values).
    public init(yaml: String, source: String) throws {
        self.source = source
        let node: Node?
        do {
            node = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError("\(source): not valid YAML: \(error)")
        }
        guard let node else { return }
        guard case .mapping(let mapping) = node else { throw ConfigError("\(source): expected a mapping of keys at the top") }
        try flatten(mapping, prefix: "")
        for (key, value) in values { try Self.check(key, value, source: source) }
    }

    /// Reads a YAML file. Relative paths in it (see ``ConfigKey/isPath``)
    /// are relative to the file's folder and become absolute here.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError("\(path): cannot read the config file")
        }
        try self.init(data: data, source: path)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        for (key, value) in values { values[key] = Self.resolved(key, value, against: folder) }
        // A function plugin's library given as a relative path is relative to the file too.
        for key in ["reward.function", "judge.function"] {
            guard let json = pluginConfigs[key],
                  var object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any],
                  let library = object["library"] as? String, library.contains("/"), !library.hasPrefix("/") else { continue }
            object["library"] = URL(fileURLWithPath: library, relativeTo: URL(fileURLWithPath: folder, isDirectory: true))
                .absoluteURL.standardized.path
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            pluginConfigs[key] = String(decoding: data, as: UTF8.self)
        }
    }

    /// Parses YAML bytes, which must be UTF-8 (never silently repaired).
    /// - Throws: ``ConfigError`` naming `source` and the line.
    public init(data: Data, source: String) throws {
        guard let text = String(validating: data, as: UTF8.self) else {
            throw ConfigError("\(source):\(Self.firstInvalidUTF8Line(data)): not valid UTF-8 (a config must be UTF-8 text)")
        }
        try self.init(yaml: text, source: source)
    }

    /// The 1-based line of the first byte sequence that is not UTF-8.
    static func firstInvalidUTF8Line(_ data: Data) -> Int {
        var line = 1
        for piece in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if String(validating: piece, as: UTF8.self) == nil { return line }
            line += 1
        }
        return line
    }

    /// `value` made absolute against `folder` when `key` holds a path and the
    /// value is a relative one (a plugin key's bare product name is not a path).
    static func resolved(_ key: String, _ value: String, against folder: String) -> String {
        guard let known = ConfigKey.named(key), known.isPath(value), !value.hasPrefix("/") else { return value }
        return URL(fileURLWithPath: value, relativeTo: URL(fileURLWithPath: folder, isDirectory: true)).absoluteURL.standardized.path
    }

    private mutating func flatten(_ mapping: Node.Mapping, prefix: String) throws {
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else { throw ConfigError("\(source): a key at '\(prefix)' is not a string") }
            let path = prefix.isEmpty ? key : prefix + "." + key
            if let known = ConfigKey.named(path), known.kind == .pluginConfig {
                pluginConfigs[path] = try Self.json(value, source: source, path: path)
                continue
            }
            switch value {
            case .mapping(let inner): try flatten(inner, prefix: path)
            case .scalar(let scalar):
                guard ConfigKey.named(path) != nil else { throw Self.unknown(path, source: source) }
                values[path] = scalar.string
            case .sequence, .alias:
                throw ConfigError("\(source): \(path): expected \(ConfigKey.named(path)?.accepted ?? "a value"), got a list")
            }
        }
    }

    /// Applies `--set path=value` (a plugin config path sets one key inside it,
    /// e.g. `model.config.d_model=64`).
    public mutating func set(_ assignment: String) throws {
        guard let equals = assignment.firstIndex(of: "=") else {
            throw ConfigError("--set \(assignment): expected key=value")
        }
        let path = String(assignment[..<equals]), value = String(assignment[assignment.index(after: equals)...])
        if let owner = ConfigKey.all.first(where: { $0.kind == .pluginConfig && path.hasPrefix($0.path + ".") }) {
            let inner = String(path.dropFirst(owner.path.count + 1))
            var object = (try? JSONSerialization.jsonObject(with: Data((pluginConfigs[owner.path] ?? "{}").utf8))) as? [String: Any] ?? [:]
            object[inner] = Self.yamlScalar(value)
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            pluginConfigs[owner.path] = String(decoding: data, as: UTF8.self)
            return
        }
        guard let key = ConfigKey.named(path) else { throw Self.unknown(path, source: "--set") }
        if key.kind == .pluginConfig {
            guard let object = try? JSONSerialization.jsonObject(with: Data(value.utf8)), object is [String: Any] else {
                throw ConfigError("--set \(path): expected a JSON object, got '\(value)'")
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            pluginConfigs[path] = String(decoding: data, as: UTF8.self)
            return
        }
        try Self.check(path, value, source: "--set")
        // A relative path on the command line is relative to the working directory.
        values[path] = Self.resolved(path, value, against: FileManager.default.currentDirectoryPath)
    }

    /// The value of `path` (set or default). A strategy parameter's default
    /// is the selected strategy's own.
    public func value(_ path: String) -> String {
        if let set = values[path] { return set }
        let key = ConfigKey.named(path)!
        if key.isStrategyParameter,
           let parameter = strategyDescriptor.parameter(String(path.dropFirst("strategy.".count))) {
            return parameter.defaultValue
        }
        return key.defaultValue
    }

    public func int(_ path: String) -> Int { Int(value(path))! }
    public func double(_ path: String) -> Double { Double(value(path))! }
    public func string(_ path: String) -> String { value(path) }
    public func bool(_ path: String) -> Bool { value(path) == "true" }
    public func pluginConfig(_ path: String) -> String { pluginConfigs[path] ?? "{}" }

    /// The resolved config as YAML: every key with its effective value.
    public var yaml: String {
        var out = "# Resolved Prism config: every key with its effective value.\n"
        var section = ""
        for key in ConfigKey.all {
            // The selected strategy's parameters, and any other one set (so
            // the rendered config still says what was asked for, and fails as it would).
            if key.isStrategyParameter, values[key.path] == nil,
               strategyDescriptor.parameter(String(key.path.dropFirst("strategy.".count))) == nil {
                continue
            }
            let parts = key.path.split(separator: ".", maxSplits: 1).map(String.init)
            let rendered = key.kind == .pluginConfig ? Self.yamlSafeJSON(pluginConfig(key.path)) : Self.render(value(key.path), key.kind)
            if parts.count == 1 {
                out += "\(parts[0]): \(rendered)  # \(key.help)\n"
                continue
            }
            if parts[0] != section {
                section = parts[0]
                out += "\(section):\n"
            }
            out += "  \(parts[1]): \(rendered)  # \(key.help)\n"
        }
        return out
    }

    // MARK: helpers

    static func check(_ path: String, _ value: String, source: String) throws {
        guard let key = ConfigKey.named(path) else { throw unknown(path, source: source) }
        let ok: Bool
        switch key.kind {
        case .int(let range): ok = Int(value).map(range.contains) ?? false
        case .double(let range): ok = Double(value).map(range.contains) ?? false
        case .bool: ok = value == "true" || value == "false"
        case .string, .pluginConfig: ok = true
        case .choice(let values): ok = values.contains(value)
        }
        guard ok else { throw ConfigError("\(source): \(path): expected \(key.accepted), got '\(value)'") }
    }

    static func unknown(_ path: String, source: String) -> ConfigError {
        let nearest = ConfigKey.all.map(\.path)
            .sorted { editDistance($0, path) < editDistance($1, path) }
            .prefix(3)
        return ConfigError("\(source): \(path): unknown key; nearest valid names: \(nearest.joined(separator: ", "))")
    }

    static func json(_ node: Node, source: String, path: String) throws -> String {
        func convert(_ node: Node) -> Any {
            switch node {
            // A quoted or block scalar is a string, as its author wrote it ("123" stays text).
            case .scalar(let scalar): return scalar.style == .plain ? yamlScalar(scalar.string) : scalar.string
            case .mapping(let mapping):
                var object: [String: Any] = [:]
                for (k, v) in mapping { object[k.string ?? ""] = convert(v) }
                return object
            case .sequence(let sequence): return sequence.map(convert)
            case .alias: return NSNull()
            }
        }
        var value = convert(node)
        // A plugin config may also be given as JSON object text.
        if let text = value as? String, text.hasPrefix("{") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)), object is [String: Any] else {
                throw ConfigError("\(source): \(path): expected a mapping or a JSON object, got '\(text)'")
            }
            value = object
        }
        guard value is [String: Any] else { throw ConfigError("\(source): \(path): expected a mapping") }
        let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// A YAML scalar as a JSON value: number, bool, null or string.
    static func yamlScalar(_ text: String) -> Any {
        if text == "true" { return true }
        if text == "false" { return false }
        if text == "null" || text == "~" { return NSNull() }
        if let int = Int(text) { return int }
        if let double = Double(text) { return double }
        return text
    }

    /// A value as YAML that reads back as the same text: numbers and booleans
    /// (already checked) as they are, a text plain when it only holds
    /// characters YAML never reads specially, otherwise double-quoted.
    static func render(_ value: String, _ kind: ConfigKey.Kind) -> String {
        switch kind {
        case .string, .choice: isPlainSafe(value) ? value : quoted(value)
        default: value
        }
    }

    /// Letters, digits and `_ . / + = , @ -`, starting with neither `-` nor
    /// another mark YAML reads specially.
    static func isPlainSafe(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, first.isASCII,
              first.properties.isAlphabetic || ("0"..."9").contains(first) || first == "_" || first == "." || first == "/" else {
            return false
        }
        return text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_./+=,@-".unicodeScalars.contains($0)) }
    }

    /// `text` as a YAML double-quoted scalar: `"` and `\` escaped, and every
    /// character a YAML reader refuses or folds (controls, line breaks, C1,
    /// U+2028/9, U+FEFF, non-characters) as a `\u` escape.
    static func quoted(_ text: String) -> String {
        "\"" + escapedForYAML(text, quotes: true) + "\""
    }

    /// JSON text (a plugin config) made safe to read as a YAML flow mapping:
    /// inside its strings, characters YAML refuses or folds become `\u` escapes, which
    /// JSON and YAML read alike.
    static func yamlSafeJSON(_ json: String) -> String {
        escapedForYAML(json, quotes: false)
    }

    private static func escapedForYAML(_ text: String, quotes: Bool) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x22 where quotes: out += "\\\""
            case 0x5C where quotes: out += "\\\\"
            case 0x20...0x7E, 0xA0...0x2027, 0x202A...0xD7FF, 0xE000...0xFDCF, 0xFDF0...0xFEFE, 0xFF00...0xFFFD, 0x10000...:
                out.unicodeScalars.append(scalar)
            default:
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            }
        }
        return out
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var previous = row[0]
        row[0] = i
        for j in 1...max(b.count, 1) where !b.isEmpty {
            let current = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
            previous = current
        }
    }
    return a.isEmpty ? b.count : row[b.count]
}
