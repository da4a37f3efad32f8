import PrismCore

/// Multi-step arithmetic chains with difficulty knobs, written step by step
/// in the one format the step judge checks:
///
///     prompt   "12+34+7="
///     solution "12+34=46;46+7=53;#53"
///
/// Chains are evaluated left to right (each step combines the running value
/// with the next term), so every step has exactly one right answer.
public struct ArithmeticTask: Sendable, Equatable {
    /// How many terms a problem has (inclusive range, >= 2).
    public var terms: ClosedRange<Int>
    /// How many digits each term has (inclusive range, >= 1).
    public var digits: ClosedRange<Int>
    /// The operators to draw from, among "+", "-", "*".
    public var operators: [Character]

    public init(terms: ClosedRange<Int> = 2...3, digits: ClosedRange<Int> = 1...2, operators: [Character] = ["+"]) {
        precondition(terms.lowerBound >= 2 && digits.lowerBound >= 1 && digits.upperBound <= 9, "terms >= 2, digits 1...9")
        precondition(!operators.isEmpty && operators.allSatisfy { "+-*".contains($0) }, "operators among + - *")
        self.terms = terms
        self.digits = digits
        self.operators = operators
    }

    /// One problem drawn with `rng`.
    public func example(_ rng: inout RandomState) -> Example {
        let count = terms.lowerBound + Int(rng.next() % UInt64(terms.count))
        var values: [Int] = []
        for _ in 0..<count {
            let d = digits.lowerBound + Int(rng.next() % UInt64(digits.count))
            let low = d == 1 ? 0 : pow10(d - 1)
            values.append(low + Int(rng.next() % UInt64(pow10(d) - low)))
        }
        let ops = (1..<count).map { _ in operators[Int(rng.next() % UInt64(operators.count))] }
        var running = values[0]
        var steps: [String] = []
        for (k, op) in ops.enumerated() {
            let next: Int
            switch op {
            case "+": next = running + values[k + 1]
            case "-": next = running - values[k + 1]
            default: next = running * values[k + 1]
            }
            steps.append("\(running)\(op)\(values[k + 1])=\(next)")
            running = next
        }
        var prompt = "\(values[0])"
        for (k, op) in ops.enumerated() { prompt += "\(op)\(values[k + 1])" }
        return Example(prompt: prompt + "=", answer: "\(running)", steps: steps,
                       metadata: ["terms": .number(Double(count))])
    }

    /// `count` problems from `seed`.
    public func examples(count: Int, seed: UInt64) -> [Example] {
        var rng = RandomState(seed: seed)
        return (0..<count).map { _ in example(&rng) }
    }
}

private func pow10(_ n: Int) -> Int { (0..<n).reduce(1) { r, _ in r * 10 } }
