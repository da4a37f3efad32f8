import PrismCore

/// A bare C function used as a reward or a judge in place of a plugin: a
/// config's `reward.function` or `judge.function`, called through libffi.
///
/// The signature is letters: the result, then the arguments in parentheses,
/// e.g. `d(ss)` for `double f(const char *, const char *)`.
///
/// | letter | C type | as a result | as an argument |
/// |---|---|---|---|
/// | `i` | `int32_t` | yes | no |
/// | `l` | `int64_t` | yes | no |
/// | `f` | `float` | yes | no |
/// | `d` | `double` | yes | no |
/// | `s` | `const char *`, NUL-terminated UTF-8 | no | yes |
/// | `b` | `const uint8_t *, size_t` (two parameters) | no | yes |
///
/// The arguments are, in this order, the completion, the reference answer,
/// the prompt and the dataset's metadata JSON; a function takes the first
/// one to four of them. A reward returns the reward (NaN = not applicable);
/// a judge returns the 0-based index of the first wrong step among the
/// completion's non-empty steps (lines, or pieces between a configured
/// separator), or -1 when every step is right.
public struct FunctionDeclaration: Sendable, Equatable {
    /// What the function stands in for.
    public enum Role: String, Sendable {
        case reward, judge

        var results: String { self == .reward ? "i, l, f or d (the reward)" : "i or l (the first wrong step, -1 for none)" }
        func accepts(result: Character) -> Bool { self == .reward ? "ilfd".contains(result) : "il".contains(result) }
    }

    /// The texts passed as arguments, in order.
    public static let inputs = ["the completion", "the reference answer", "the prompt", "the metadata JSON"]

    public var role: Role
    /// The config key that declared it (for errors), e.g. `reward.function`.
    public var key: String
    /// A path (absolute, or containing `/`), or a file name the dynamic
    /// loader searches for (`libmine.so`, `LD_LIBRARY_PATH`).
    public var library: String
    public var symbol: String
    public var signature: String
    /// Rewards: the reward from which an answer counts as correct (default 1).
    public var correctAt: Double
    /// Judges: what separates the completion's steps (default a newline);
    /// empty steps (only spaces) are skipped.
    public var separator: String
    /// The result letter and the argument letters, once parsed.
    public let result: Character
    public let arguments: [Character]

    /// Parses and checks a declaration; nothing is loaded or called.
    /// - Throws: ``PluginError`` `badSignature` for an unknown letter or a
    ///   malformed signature, `signatureMismatch` for one that does not fit
    ///   the role.
    public init(role: Role, key: String, library: String, symbol: String, signature: String,
                correctAt: Double = 1, separator: String = "\n") throws(PluginError) {
        self.role = role
        self.key = key
        self.library = library
        self.symbol = symbol
        self.signature = signature
        self.correctAt = correctAt
        self.separator = separator
        guard !separator.isEmpty else {
            throw PluginError(.badSignature, plugin: key, reason: "separator: expected a non-empty string")
        }
        (result, arguments) = try Self.parse(signature, role: role, key: key)
    }

    static func parse(_ signature: String, role: Role, key: String) throws(PluginError) -> (Character, [Character]) {
        let letters: [Character: String] = [
            "i": "int32", "l": "int64", "f": "float", "d": "double", "s": "UTF-8 string", "b": "buffer + length",
        ]
        func bad(_ reason: String) -> PluginError {
            PluginError(.badSignature, plugin: key, reason: "signature \"\(signature)\": \(reason)")
        }
        let characters = Array(signature)
        for (position, letter) in characters.enumerated() where letters[letter] == nil && letter != "(" && letter != ")" {
            throw bad("unknown type letter '\(letter)' at position \(position + 1); expected i (int32), l (int64), "
                + "f (float), d (double), s (UTF-8 string) or b (buffer + length)")
        }
        guard characters.count >= 3, characters[1] == "(", characters.last == ")",
              characters.dropFirst(2).dropLast().allSatisfy({ $0 != "(" && $0 != ")" }), characters[0] != "(" else {
            throw bad("expected the result letter, then the argument letters in parentheses, e.g. \"d(ss)\"")
        }
        let result = characters[0]
        let arguments = Array(characters.dropFirst(2).dropLast())
        func mismatch(_ reason: String) -> PluginError {
            PluginError(.signatureMismatch, plugin: key, reason: "signature \"\(signature)\" does not fit a \(role.rawValue): \(reason)")
        }
        guard role.accepts(result: result) else {
            throw mismatch("the result must be \(role.results), got \(result) (\(letters[result]!))")
        }
        guard !arguments.isEmpty else { throw mismatch("it must take at least the completion (s or b)") }
        guard arguments.count <= inputs.count else {
            throw mismatch("it takes at most \(inputs.count) arguments (\(inputs.joined(separator: ", "))), got \(arguments.count)")
        }
        for (index, letter) in arguments.enumerated() where letter != "s" && letter != "b" {
            throw mismatch("argument \(index + 1) is \(inputs[index]), a text (s or b), not \(letter) (\(letters[letter]!))")
        }
        return (result, arguments)
    }
}

extension PluginError.Code {
    /// A function plugin's signature is malformed or has an unknown letter.
    public static let badSignature = Self.named("bad-signature")
    /// A function plugin's signature is well-formed but does not fit its role.
    public static let signatureMismatch = Self.named("signature-mismatch")
    /// A function plugin's library does not export the symbol.
    public static let missingSymbol = Self.named("missing-symbol")
}

/// Bare C functions as rewards and judges (``FunctionDeclaration``).
public enum FunctionPlugin {
    /// Loads the declared function as a reward. Its answers are checked as a
    /// plugin's are (a reward must be finite or NaN); an answer counts as
    /// correct when its reward is at least ``FunctionDeclaration/correctAt``.
    /// - Throws: ``PluginError``: the declaration's own errors, then
    ///   `fileMissing` or `notSharedObject` when the library does not load,
    ///   `missingSymbol` when it lacks the symbol.
    public static func reward(_ declaration: FunctionDeclaration) throws(PluginError) -> any RewardFunction {
        precondition(declaration.role == .reward, "a judge declaration used as a reward")
        return FunctionReward(try ForeignFunction.load(declaration))
    }

    /// Loads the declared function as a judge: for each completion, the
    /// first wrong step among its non-empty steps (-1 for none). The score
    /// is the share of steps before it (1 when none is wrong) and the span
    /// that line's bytes, so SGPO's credit rules can place it.
    /// - Throws: as ``reward(_:)``.
    public static func judge(_ declaration: FunctionDeclaration) throws(PluginError) -> any FeedbackGenerator {
        precondition(declaration.role == .judge, "a reward declaration used as a judge")
        return FunctionJudge(try ForeignFunction.load(declaration))
    }
}

final class FunctionReward: RewardFunction {
    let function: ForeignFunction

    init(_ function: ForeignFunction) { self.function = function }

    /// The batch's fields in the order of the function's arguments.
    private static let order: [RewardBatch.Field] = [.completion, .reference, .prompt, .metadataJSON]

    func score(_ batch: RewardBatch) throws -> [RewardScore] {
        var scores: [RewardScore] = []
        scores.reserveCapacity(batch.count)
        let correctAt = function.declaration.correctAt
        try function.callEach(batch.utf8, count: batch.count, range: { batch.range($0, Self.order[$1]) }) { i, reward, _ in
            guard !reward.isInfinite else {
                throw function.invalidOutput("reward \(reward) for sample \(i); expected a finite number or NaN")
            }
            scores.append(RewardScore(reward: reward, correct: reward >= correctAt))
        }
        return scores
    }
}

final class FunctionJudge: FeedbackGenerator {
    let function: ForeignFunction

    init(_ function: ForeignFunction) { self.function = function }

    func assess(_ group: FeedbackGroup) throws -> Feedback {
        var scores: [Double] = [], errors: [Int?] = [], spans: [Range<Int>?] = []
        for (i, completion) in group.completions.enumerated() {
            var text: [UInt8] = []
            var ranges: [Range<Int>] = []
            for field in [completion, group.reference, group.prompt, group.metadataJSON] {
                ranges.append(text.count..<(text.count + field.utf8.count))
                text += field.utf8
            }
            let steps = Self.steps(completion, separator: function.declaration.separator)
            var index: Int64 = 0
            function.callEach(text, count: 1, range: { ranges[$1] }) { _, _, integer in index = integer }
            guard index >= -1, index < Int64(steps.count) else {
                throw function.invalidOutput("first wrong step \(index) for completion \(i), which has \(steps.count) "
                    + "steps; expected -1 or 0...\(steps.count - 1)")
            }
            if index == -1 {
                scores.append(1)
                errors.append(nil)
                spans.append(nil)
            } else {
                scores.append(Double(index) / Double(steps.count))
                errors.append(Int(index))
                spans.append(steps[Int(index)])
            }
        }
        return Feedback(scores: scores, firstErrors: errors, firstErrorSpans: spans)
    }

    /// The byte ranges of the steps of `text`: the pieces between
    /// `separator`s, without those holding only spaces, tabs or newlines.
    static func steps(_ text: String, separator: String) -> [Range<Int>] {
        let bytes = Array(text.utf8), mark = Array(separator.utf8)
        var result: [Range<Int>] = []
        var start = 0, i = 0
        func close(_ end: Int) {
            if bytes[start..<end].contains(where: { ![9, 10, 13, 32].contains($0) }) { result.append(start..<end) }
        }
        while i + mark.count <= bytes.count {
            if bytes[i..<(i + mark.count)].elementsEqual(mark) {
                close(i)
                i += mark.count
                start = i
            } else {
                i += 1
            }
        }
        close(bytes.count)
        return result
    }
}
