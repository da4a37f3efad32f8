import PrismCore

/// Arithmetic word problems for real language models: a short story whose
/// quantity changes a few times, solved one calculation per line and ended
/// by an `Answer: N` line.
///
///     prompt    "Mia has 12 shells. She finds 34 more. Then she gives away 7.
///                How many shells does Mia have now?" and the format
///                (``instruction``), with a one-line example
///     solution  "12 + 34 = 46\n46 - 7 = 39\nAnswer: 39"
///
/// The arithmetic is the chains' (``ArithmeticTask``, left to right) and the
/// examples carry their steps, so the step judge checks each line
/// (`"format": "lines"`) and the exact-answer reward reads the last line
/// (`"marker": "Answer:"`). `metadata.format` is `"lines"`.
public struct WordProblemTask: Sendable, Equatable {
    public var chains: ArithmeticTask

    /// Chains with + and − (and × when `operators` has it); at least 2 terms.
    public init(terms: ClosedRange<Int> = 2...3, digits: ClosedRange<Int> = 1...2, operators: [Character] = ["+", "-"]) {
        chains = ArithmeticTask(terms: terms, digits: digits, operators: operators)
    }

    /// Who the stories are about, and what they count.
    private static let names = ["Mia", "Leo", "Ava", "Noah", "Zoe", "Omar", "Lena", "Ravi"]
    private static let things = ["shells", "stamps", "marbles", "apples", "coins", "stickers", "books", "pencils"]

    /// The format, shown once after every story.
    public static let instruction = """
        Write one calculation per line, then a last line "Answer: N". For example, for "Sam has 5 coins. \
        He finds 3 more. How many coins does Sam have now?" write:
        5 + 3 = 8
        Answer: 8
        """

    /// One problem drawn with `rng`.
    public func example(_ rng: inout RandomState) -> Example {
        var chain = chains.example(&rng)
        while chain.steps.map(Self.parse).contains(where: { $0.result < 0 }) { chain = chains.example(&rng) }  // no debts in a story
        let name = Self.names[Int(rng.next() % UInt64(Self.names.count))]
        let thing = Self.things[Int(rng.next() % UInt64(Self.things.count))]
        let pronoun = ["Mia", "Ava", "Zoe", "Lena"].contains(name) ? "She" : "He"
        // The chain's steps are "a+b=c": the first term opens the story, each step adds a sentence.
        let parsed = chain.steps.map(Self.parse)
        var story = "\(name) has \(parsed.first?.lhs ?? 0) \(thing)."
        for (k, step) in parsed.enumerated() {
            let then = k == 0 ? "" : "Then "
            let subject = k == 0 ? pronoun : pronoun.lowercased()
            switch step.op {
            case "+": story += " \(then)\(subject) finds \(step.rhs) more."
            case "-": story += " \(then)\(subject) gives away \(step.rhs)."
            default: story += " \(then)\(subject) ends up with \(step.rhs) times as many."
            }
        }
        story += " How many \(thing) does \(name) have now?"
        story += "\n" + Self.instruction
        let steps = parsed.map { "\($0.lhs) \($0.op) \($0.rhs) = \($0.result)" }
        var metadata = chain.metadata
        metadata["format"] = .string("lines")
        return Example(prompt: story, answer: chain.answer, steps: steps, metadata: metadata)
    }

    /// `count` problems from `seed`.
    public func examples(count: Int, seed: UInt64) -> [Example] {
        var rng = RandomState(seed: seed)
        return (0..<count).map { _ in example(&rng) }
    }

    /// "12+34=46" (values may be negative) into its parts.
    private static func parse(_ step: String) -> (lhs: Int, op: Character, rhs: Int, result: Int) {
        let sides = step.split(separator: "=", maxSplits: 1)
        let left = sides[0], result = Int(sides[1])!
        // The operator is the first + - * after the (possibly signed) left value.
        let start = left.index(after: left.startIndex)
        let at = left[start...].firstIndex { "+-*".contains($0) }!
        return (Int(left[..<at])!, left[at], Int(left[left.index(after: at)...])!, result)
    }
}
