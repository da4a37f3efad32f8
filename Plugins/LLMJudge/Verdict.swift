// What the LLM judge reads and writes that is plain text: how a completion
// is split into steps, the prompt that numbers them, and how the model's
// answer is read back as the index of the first wrong step.
import Foundation

/// How a completion is split into steps.
enum StepRule: Equatable {
    /// Each non-blank line.
    case lines
    /// Blocks separated by blank lines.
    case paragraphs
    /// The pieces between occurrences of a string (blank pieces skipped).
    case separator(String)

    /// The byte ranges of the steps of `text`, trimmed of surrounding
    /// white space; steps that are only white space are left out.
    func steps(_ text: String) -> [Range<Int>] {
        let bytes = Array(text.utf8)
        var pieces: [Range<Int>] = []
        switch self {
        case .lines:
            pieces = split(bytes, at: [10])
        case .separator(let mark):
            pieces = split(bytes, at: Array(mark.utf8))
        case .paragraphs:
            // A blank line (only spaces, tabs or \r) ends a paragraph.
            var start = 0, lineStart = 0
            for i in 0...bytes.count {
                guard i == bytes.count || bytes[i] == 10 else { continue }
                if bytes[lineStart..<i].allSatisfy(isSpace) {
                    pieces.append(start..<lineStart)
                    start = min(i + 1, bytes.count)
                }
                lineStart = min(i + 1, bytes.count)
            }
            pieces.append(start..<bytes.count)
        }
        return pieces.compactMap { trimmed($0, bytes) }
    }

    private func split(_ bytes: [UInt8], at mark: [UInt8]) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var start = 0, i = 0
        while i + mark.count <= bytes.count {
            if bytes[i..<(i + mark.count)].elementsEqual(mark) {
                pieces.append(start..<i)
                i += mark.count
                start = i
            } else {
                i += 1
            }
        }
        pieces.append(start..<bytes.count)
        return pieces
    }

    private func trimmed(_ range: Range<Int>, _ bytes: [UInt8]) -> Range<Int>? {
        var low = range.lowerBound, high = range.upperBound
        while low < high, isSpace(bytes[low]) { low += 1 }
        while high > low, isSpace(bytes[high - 1]) { high -= 1 }
        return low < high ? low..<high : nil
    }
}

private func isSpace(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 || byte == 10 || byte == 13 }

/// The prompt template: text with placeholders in braces ({{ and }} are
/// literal braces).
struct PromptTemplate {
    static let placeholders = ["problem", "reference", "reference_steps", "steps", "step_count", "last_index"]

    /// The default, in the ProcessBench convention (steps from 0, -1 for none).
    static let standard = """
        You are checking a worked solution one step at a time.

        Problem:
        {problem}

        Reference answer: {reference}
        Reference solution:
        {reference_steps}

        The solution to check, in {step_count} numbered steps:
        {steps}

        Which step is the first one that is wrong (a wrong calculation, a false statement, or a step that does \
        not follow from the ones before it)? The steps are numbered from 0 to {last_index}. If every step is \
        right, the answer is -1. Reply with that number only.
        """

    let text: String

    /// - Throws: ``TemplateError`` for an unknown placeholder or an unclosed brace.
    init(_ text: String) throws {
        self.text = text
        _ = try render([:])
    }

    struct TemplateError: Error, CustomStringConvertible {
        let description: String
    }

    /// The text with each placeholder replaced by `values[name]` ("" when absent).
    func render(_ values: [String: String]) throws -> String {
        var out = ""
        var rest = Substring(text)
        while let brace = rest.firstIndex(where: { $0 == "{" || $0 == "}" }) {
            out += rest[..<brace]
            let after = rest.index(after: brace)
            if after < rest.endIndex, rest[after] == rest[brace] {  // {{ or }}
                out.append(rest[brace])
                rest = rest[rest.index(after: after)...]
                continue
            }
            guard rest[brace] == "{", let close = rest[after...].firstIndex(of: "}") else {
                throw TemplateError(description: "a lone '\(rest[brace])' (write {{ or }} for a literal brace)")
            }
            let name = String(rest[after..<close])
            guard Self.placeholders.contains(name) else {
                throw TemplateError(description: "unknown placeholder {\(name)}; expected one of "
                    + Self.placeholders.map { "{\($0)}" }.joined(separator: ", "))
            }
            out += values[name] ?? ""
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }
}

/// Reads the index of the first wrong step (-1 for none) from a model's
/// answer, in this order: the whole answer is an integer; a JSON object
/// (alone or inside the text) with an integer under "first_error",
/// "first_wrong_step", "index", "step" or "answer"; \boxed{N}; phrases such
/// as "step 2" or "paragraph 2" that all name the same step; and last, the
/// one integer in the text. Anything else — several different candidates,
/// none, or an index outside -1...stepCount-1 — is nil: never a guess.
func parseVerdict(_ answer: String, stepCount: Int) -> Int? {
    let text = answer.trimmingCharacters(in: .whitespacesAndNewlines)
    func inRange(_ value: Int?) -> Int? {
        guard let value, value >= -1, value < stepCount else { return nil }
        return value
    }
    if let whole = Int(text) { return inRange(whole) }
    // JSON: the whole answer, or the first {...} in it (models like code fences).
    var objects: [String] = [text]
    if let open = text.firstIndex(of: "{"), let close = text.lastIndex(of: "}"), open < close {
        objects.append(String(text[open...close]))
    }
    for candidate in objects {
        if let data = candidate.data(using: .utf8),
           let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
            for key in ["first_error", "first_wrong_step", "index", "step", "answer"] {
                if let number = object[key] as? NSNumber, let exact = Int(exactly: number.doubleValue) { return inRange(exact) }
                if let string = object[key] as? String, let exact = Int(string.trimmingCharacters(in: .whitespaces)) {
                    return inRange(exact)
                }
            }
        }
    }
    func integers(_ pattern: String) -> [Int] {
        guard let regex = try? NSRegularExpression(pattern: pattern, options: [.caseInsensitive]) else { return [] }
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { match in
            Range(match.range(at: 1), in: text).flatMap { Int(text[$0]) }
        }
    }
    for pattern in [#"\\boxed\{\s*(-?\d+)\s*\}"#, #"\b(?:step|paragraph|index)\s*(?:#|no\.?|number)?\s*(-?\d+)"#] {
        let found = Set(integers(pattern))
        if found.count == 1 { return inRange(found.first) }
        if found.count > 1 { return nil }
    }
    // Whole integers only: not part of a word or a decimal ("1.5"), but a sentence's full stop is fine.
    let all = integers(#"(?<![\w.])(-?\d+)(?!\w)(?!\.\d)"#)
    return all.count == 1 ? inRange(all[0]) : nil
}
