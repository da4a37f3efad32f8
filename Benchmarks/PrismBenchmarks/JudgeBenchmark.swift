import Foundation
import PrismCore
import PrismHost
import PrismTrainer

/// How well a step judge (any feedback plugin, e.g. the LLM judge in front of
/// a real model) agrees with the exact arithmetic judge on generated wrong
/// answers: word-problem solutions (one calculation per line, then
/// "Answer: N") with one calculation made wrong, the lines after it carried
/// on consistently, so the exact judge's first error is that line.
public struct JudgeBenchmark {
    public var judgePath: String
    public var judgeConfig: String
    public var count: Int
    public var seed: UInt64
    /// A JSONL file with one line per answer (steps, exact and judged first error), or nil.
    public var out: String?

    public init(judgePath: String, judgeConfig: String, count: Int, seed: UInt64, out: String?) {
        self.judgePath = judgePath
        self.judgeConfig = judgeConfig
        self.count = count
        self.seed = seed
        self.out = out
    }

    /// One wrong answer: its problem and text, and where its first error is.
    struct Case {
        var example: Example
        var completion: String
        var firstError: Int
        var steps: Int
    }

    /// Wrong solutions with a known first error: a random line's result is
    /// off by 1...9 and the later lines compute from it.
    static func cases(count: Int, seed: UInt64) -> [Case] {
        var rng = RandomState(seed: seed)
        let task = WordProblemTask(terms: 3...4, digits: 1...2, operators: ["+", "-"])
        var cases: [Case] = []
        while cases.count < count {
            let example = task.example(&rng)
            let parsed = example.steps.compactMap(Self.parse)
            guard parsed.count == example.steps.count, !parsed.isEmpty else { continue }
            let wrong = Int(rng.next() % UInt64(parsed.count))
            let delta = Int(rng.next() % 9) + 1
            var value = 0
            var lines: [String] = []
            for (k, step) in parsed.enumerated() {
                let lhs = k == 0 ? step.lhs : value
                var result = step.op == "+" ? lhs + step.rhs : lhs - step.rhs
                if k == wrong { result += rng.next() % 2 == 0 ? delta : -delta }
                value = result
                lines.append("\(lhs) \(step.op) \(step.rhs) = \(result)")
            }
            lines.append("Answer: \(value)")
            cases.append(Case(example: example, completion: lines.joined(separator: "\n"), firstError: wrong,
                              steps: lines.count))
        }
        return cases
    }

    static func parse(_ step: String) -> (lhs: Int, op: Character, rhs: Int)? {
        let parts = step.split(separator: " ")
        guard parts.count == 5, let lhs = Int(parts[0]), let op = parts[1].first, let rhs = Int(parts[2]) else { return nil }
        return (lhs, op, rhs)
    }

    public func run(log: (String) -> Void) throws -> String {
        let cases = Self.cases(count: count, seed: seed)
        // The exact judge checks the construction: its first error must be the changed line.
        let exact = try PluginLibrary.load(try PluginDiscovery.find(product: "PrismStepJudge")
            ?? { throw PluginError(.fileMissing, plugin: "libPrismStepJudge.so", reason: "not found in the plugin search path") }())
            .instantiate(config: #"{"format": "lines"}"#).feedbackGenerator()
        let judge = try PluginLibrary.load(judgePath).instantiate(config: judgeConfig).feedbackGenerator()
        var agree = 0, saidNone = 0, offByOne = 0, failedGroups = 0, judged = 0
        var report = FeedbackReport()
        var latencies: [Double] = []
        var lines: [String] = []
        let clock = ContinuousClock()
        let started = clock.now
        // Each answer is a group of its own (its own problem), asked one at a time.
        for item in cases {
            let group = FeedbackGroup(prompt: item.example.prompt, reference: item.example.answer,
                                      referenceSteps: item.example.steps, completions: [item.completion],
                                      rewards: [0], correct: [false])
            let truth = try exact.assess(group).firstErrors[0]
            guard truth == item.firstError else {
                throw PluginError(.invalidOutput, plugin: "bench judge", reason: "the exact judge puts the first error "
                    + "of a generated answer at \(String(describing: truth)), not \(item.firstError)")
            }
            let asked = clock.now
            var itemReport = FeedbackReport()
            let verdict: Int?
            var failure: String?
            do {
                verdict = try judge.assess(group, report: &itemReport).firstErrors[0] ?? -1
            } catch {
                verdict = nil
                failure = "\(error)"
                failedGroups += 1
            }
            latencies.append(seconds(clock.now - asked))
            report = report + itemReport
            judged += 1
            if let verdict {
                if verdict == item.firstError { agree += 1 }
                if verdict == -1 { saidNone += 1 }
                if verdict >= 0, abs(verdict - item.firstError) == 1 { offByOne += 1 }
            }
            var line: [String: Any] = ["prompt": item.example.prompt, "completion": item.completion,
                                       "first_error": item.firstError, "steps": item.steps]
            line["judged"] = verdict.map { $0 as Any } ?? NSNull()
            if let failure { line["error"] = failure }
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
            if judged % 25 == 0 || judged == cases.count {
                log(String(format: "%d/%d judged, agreement so far %.3f", judged, cases.count, Double(agree) / Double(judged)))
            }
        }
        if let out { try (lines.joined(separator: "\n") + "\n").write(toFile: out, atomically: true, encoding: .utf8) }
        let wall = seconds(clock.now - started)
        let sorted = latencies.sorted()
        let n = Double(cases.count)
        let answered = cases.count - failedGroups
        // A uniform guess among a solution's lines (the answer line included) for comparison.
        let chance = cases.map { 1 / Double($0.steps) }.reduce(0, +) / n
        func share(_ k: Int) -> String { String(format: "%.3f (%d)", Double(k) / n, k) }
        return """
            judge agreement: \(cases.count) generated wrong answers (word problems, 3-4 calculations + "Answer: N"), seed \(seed)
            judge: \(judgePath) \(judgeConfig)
            first error exactly right: \(share(agree))   (a uniform guess over the lines: \(String(format: "%.3f", chance)))
            said "no error" (-1):      \(share(saidNone))
            off by one line:           \(share(offByOne))
            no verdict (failed):       \(share(failedGroups)) of which unparseable \(report.unparseable), timeouts \(report.timeouts), \
            HTTP errors \(report.httpErrors), connection errors \(report.connectionErrors)
            answered: \(answered); latency per verdict: median \(String(format: "%.2f", sorted.isEmpty ? 0 : sorted[sorted.count / 2])) s, \
            p90 \(String(format: "%.2f", sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(0.9 * Double(sorted.count)))])) s, \
            wall \(String(format: "%.0f", wall)) s
            tokens (the server's usage): prompt \(report.promptTokens), completion \(report.completionTokens); requests \(report.requests), cache hits \(report.cacheHits)
            """
    }
}

private func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}
