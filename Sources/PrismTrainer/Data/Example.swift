import Foundation

/// One dataset line: `{"prompt": ..., "answer": ..., "steps": [...], "metadata": {...}}`.
public struct Example: Codable, Equatable, Sendable {
    public var prompt: String
    public var answer: String
    /// The reference solution's steps (may be empty).
    public var steps: [String]
    /// Extra fields passed to plugins as a JSON object.
    public var metadata: [String: JSONScalar]

    public init(prompt: String, answer: String, steps: [String] = [], metadata: [String: JSONScalar] = [:]) {
        self.prompt = prompt
        self.answer = answer
        self.steps = steps
        self.metadata = metadata
    }

    enum CodingKeys: String, CodingKey { case prompt, answer, steps, metadata }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try c.decode(String.self, forKey: .prompt)
        answer = try c.decode(String.self, forKey: .answer)
        steps = try c.decodeIfPresent([String].self, forKey: .steps) ?? []
        metadata = try c.decodeIfPresent([String: JSONScalar].self, forKey: .metadata) ?? [:]
    }

    /// The text a model should produce: the steps, then `#answer`
    /// (`12+34=46;46+7=53;#53`); with `metadata.format` `"lines"` one step per
    /// line, then `Answer: answer` (``WordProblemTask``).
    public var solution: String {
        if metadata["format"] == .string("lines") { return (steps + ["Answer: " + answer]).joined(separator: "\n") }
        return (steps + ["#" + answer]).joined(separator: ";")
    }

    /// `metadata` as compact JSON ("" when empty).
    public var metadataJSON: String {
        guard !metadata.isEmpty, let data = try? JSONEncoder.sorted.encode(metadata) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// A scalar JSON value for metadata.
public enum JSONScalar: Codable, Equatable, Sendable {
    case string(String), number(Double), bool(Bool)

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else { self = .string(try c.decode(String.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .number(let d): try c.encode(d)
        case .bool(let b): try c.encode(b)
        }
    }
}

extension JSONEncoder {
    /// Compact JSON with sorted keys (stable files).
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
