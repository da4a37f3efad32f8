// The arithmetic-chain step checker behind the step judge. Pure Swift.
//
// Task format (see Documentation/Plugins.md):
//   prompt      "12+34+7="            terms joined by + - *, then '='
//   completion  "12+34=46;46+7=53;#53"
// The chain is evaluated left to right: step k (0-based) combines the running
// value with term k+1, "x op y = z". A response has n = terms - 1 arithmetic
// steps plus one answer step ("#value"), so n + 1 steps in all.

/// A problem parsed from its prompt: the terms and the operators between them.
struct ArithmeticProblem: Equatable {
    var terms: [Int]
    var operators: [Character]

    /// Parses "12+34-7=" (whitespace allowed). Returns nil if the prompt is not
    /// such a chain or a running value overflows.
    init?(prompt: Substring) {
        var text = prompt.filter { !$0.isWhitespace }[...]
        if text.last == "=" { text = text.dropLast() }
        var terms: [Int] = []
        var operators: [Character] = []
        while !text.isEmpty {
            guard let (value, rest) = parseInteger(text, allowSign: terms.isEmpty) else { return nil }
            terms.append(value)
            text = rest
            guard let op = text.first else { break }
            guard "+-*".contains(op) else { return nil }
            operators.append(op)
            text = text.dropFirst()
            if text.isEmpty { return nil }
        }
        guard terms.count >= 2 else { return nil }
        self.terms = terms
        self.operators = operators
        guard runningValues != nil else { return nil }
    }

    /// The running value after each step: [t0, t0 op t1, ...]; nil on overflow.
    var runningValues: [Int]? {
        var values = [terms[0]]
        for (k, op) in operators.enumerated() {
            guard let next = apply(op, values[k], terms[k + 1]) else { return nil }
            values.append(next)
        }
        return values
    }

    /// Steps in a full solution: the arithmetic steps plus the answer step.
    var stepCount: Int { operators.count + 1 }
}

/// What the judge concludes about one response.
struct StepVerdict: Equatable {
    /// 0-based index of the first wrong step, or nil if every step is right.
    var firstError: Int?
    /// Number of steps in a full solution (n + 1).
    var stepCount: Int
    /// Fraction of the solution before the first error, in [0, 1].
    var score: Double {
        guard let firstError else { return 1 }
        return Double(firstError) / Double(stepCount)
    }
}

/// What the judge makes of text after a right final answer.
enum AfterAnswer: String, CaseIterable {
    /// It makes the answer step wrong: a solution ends right after `#value`
    /// (empty `;` segments aside).
    case error
    /// It is ignored: `#53;junk` is as right as `#53`.
    case ignore
}

/// Checks a response against the problem, step by step.
func judge(_ response: Substring, problem: ArithmeticProblem, afterAnswer: AfterAnswer = .error) -> StepVerdict {
    let values = problem.runningValues ?? []
    let steps = response.split(separator: ";", omittingEmptySubsequences: false)
        .map { $0.filter { !$0.isWhitespace } }
    let verdict = { (index: Int?) in StepVerdict(firstError: index, stepCount: problem.stepCount) }
    for k in 0..<problem.operators.count {
        guard k < steps.count,
              let step = parseStep(steps[k][...]),
              step.lhs == values[k],
              step.op == problem.operators[k],
              step.rhs == problem.terms[k + 1],
              step.result == values[k + 1]
        else { return verdict(k) }
    }
    let answerIndex = problem.operators.count
    guard answerIndex < steps.count,
          steps[answerIndex].first == "#",
          let (answer, rest) = parseInteger(steps[answerIndex].dropFirst()[...], allowSign: true),
          answer == values[answerIndex],
          afterAnswer == .ignore
              || (rest.isEmpty && steps[(answerIndex + 1)...].allSatisfy(\.isEmpty))
    else { return verdict(answerIndex) }
    return verdict(nil)
}

/// Where step `index` is in `response`: the UTF-8 byte span of its
/// `;`-separated segment (with `toEnd`, as for the answer step, everything
/// after it too), or the empty span at the end when the response stops
/// before that step.
func stepSpan(_ index: Int, in response: Substring, toEnd: Bool) -> Range<Int> {
    let bytes = Array(response.utf8)
    let separator = UInt8(ascii: ";")
    var begin = 0
    for _ in 0..<index {
        guard let next = bytes[begin...].firstIndex(of: separator) else { return bytes.count..<bytes.count }
        begin = next + 1
    }
    let end = toEnd ? bytes.count : (bytes[begin...].firstIndex(of: separator) ?? bytes.count)
    return begin..<end
}

private struct Step { var lhs: Int; var op: Character; var rhs: Int; var result: Int }

/// Parses "x op y=z" with optional signs on x and z.
private func parseStep(_ text: Substring) -> Step? {
    guard let (lhs, afterLhs) = parseInteger(text, allowSign: true),
          let op = afterLhs.first, "+-*".contains(op),
          let (rhs, afterRhs) = parseInteger(afterLhs.dropFirst(), allowSign: false),
          afterRhs.first == "=",
          let (result, rest) = parseInteger(afterRhs.dropFirst(), allowSign: true),
          rest.isEmpty
    else { return nil }
    return Step(lhs: lhs, op: op, rhs: rhs, result: result)
}

/// Parses a leading integer; returns it with the rest of the text.
private func parseInteger(_ text: Substring, allowSign: Bool) -> (Int, Substring)? {
    var rest = text
    var negative = false
    if allowSign, let first = rest.first, first == "-" || first == "+" {
        negative = first == "-"
        rest = rest.dropFirst()
    }
    let digits = rest.prefix { $0.isASCII && $0.isNumber }
    guard !digits.isEmpty, digits.count <= 18, let magnitude = Int(digits) else { return nil }
    return (negative ? -magnitude : magnitude, rest.dropFirst(digits.count))
}

private func apply(_ op: Character, _ a: Int, _ b: Int) -> Int? {
    let (value, overflow): (Int, Bool)
    switch op {
    case "+": (value, overflow) = a.addingReportingOverflow(b)
    case "-": (value, overflow) = a.subtractingReportingOverflow(b)
    default: (value, overflow) = a.multipliedReportingOverflow(by: b)
    }
    return overflow ? nil : value
}

// MARK: - one step per line (the word problems)
//
// Format "lines": the completion's lines that hold a digit are its steps
// (other lines are commentary and skipped). Step k < n must contain the
// reference's k-th calculation "a op b = c" (spaces free, op among + - *
// and ×); step n is the answer line, "Answer: N" with the reference answer.

/// One reference calculation, "12 + 34 = 46".
struct Calculation: Equatable {
    var lhs: Int
    var op: Character
    var rhs: Int
    var result: Int

    /// The first calculation written in `text` ("First, 12 + 34 = 46." holds one).
    init?(in text: Substring) {
        let characters = text.filter { $0 != " " && $0 != "\t" }.map { $0 == "×" ? "*" : $0 }
        var i = 0
        while i < characters.count {
            if let (found, _) = Calculation.parse(characters, from: i) {
                self = found
                return
            }
            i += 1
        }
        return nil
    }

    private init(lhs: Int, op: Character, rhs: Int, result: Int) {
        self.lhs = lhs
        self.op = op
        self.rhs = rhs
        self.result = result
    }

    /// "a op b = c" starting exactly at `start`.
    private static func parse(_ c: [Character], from start: Int) -> (Calculation, Int)? {
        func integer(_ i: Int, signed: Bool) -> (Int, Int)? {
            var j = i
            var negative = false
            if signed, j < c.count, c[j] == "-" {
                negative = true
                j += 1
            }
            let begin = j
            while j < c.count, c[j].isASCII, c[j].isNumber, j - begin < 18 { j += 1 }
            guard j > begin, let value = Int(String(c[begin..<j])) else { return nil }
            return (negative ? -value : value, j)
        }
        guard start == 0 || !(c[start - 1].isASCII && c[start - 1].isNumber),
              let (lhs, afterLhs) = integer(start, signed: true),
              afterLhs < c.count, "+-*".contains(c[afterLhs]),
              let (rhs, afterRhs) = integer(afterLhs + 1, signed: false),
              afterRhs < c.count, c[afterRhs] == "=",
              let (result, end) = integer(afterRhs + 1, signed: true)
        else { return nil }
        return (Calculation(lhs: lhs, op: c[afterLhs], rhs: rhs, result: result), end)
    }
}

/// The lines of `text` that count as steps: their UTF-8 byte spans.
func stepLines(_ text: Substring) -> [Range<Int>] {
    var spans: [Range<Int>] = []
    var begin = 0
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        let count = line.utf8.count
        if line.contains(where: { $0.isASCII && $0.isNumber }) { spans.append(begin..<(begin + count)) }
        begin += count + 1
    }
    return spans
}

/// Checks a line-per-step response against the reference calculations and answer.
func judgeLines(_ response: Substring, reference: [Calculation], answer: Int,
                afterAnswer: AfterAnswer = .error) -> StepVerdict {
    let bytes = Array(response.utf8)
    let lines = stepLines(response)
    let text = { (span: Range<Int>) in Substring(decoding: bytes[span], as: UTF8.self) }
    let verdict = { (index: Int?) in StepVerdict(firstError: index, stepCount: reference.count + 1) }
    for (k, expected) in reference.enumerated() {
        guard k < lines.count, Calculation(in: text(lines[k])) == expected else { return verdict(k) }
    }
    let n = reference.count
    guard n < lines.count else { return verdict(n) }
    let line = text(lines[n])
    guard let marker = line.indices.first(where: { line[$0...].prefix(7).lowercased() == "answer:" }),
          let (value, rest) = parseLeadingInteger(line[line.index(marker, offsetBy: 7)...].drop { $0 == " " }),
          value == answer,
          afterAnswer == .ignore || (rest.allSatisfy { $0 == "." || $0 == " " } && lines.count == n + 1)
    else { return verdict(n) }
    return verdict(nil)
}

/// Where step `index` of a line-per-step response is: its line (the answer
/// step's runs to the end), or the empty span at the end when the response
/// stops before it.
func lineSpan(_ index: Int, in response: Substring, stepCount: Int) -> Range<Int> {
    let lines = stepLines(response)
    let end = response.utf8.count
    guard index < lines.count else { return end..<end }
    return index == stepCount - 1 ? lines[index].lowerBound..<end : lines[index]
}

/// A leading (optionally signed) integer and the rest of the text.
func parseLeadingInteger(_ text: Substring) -> (Int, Substring)? {
    var rest = text
    let negative = rest.first == "-"
    if negative { rest = rest.dropFirst() }
    let digits = rest.prefix { $0.isASCII && $0.isNumber }
    guard !digits.isEmpty, digits.count <= 18, let value = Int(digits) else { return nil }
    return (negative ? -value : value, rest.dropFirst(digits.count))
}
