// The step judge as a Prism plugin: C ABI glue around ArithmeticSteps.swift.
//
// Interface: prism.feedback/1. For each completion of a group: the score is
// the fraction of steps before the first wrong one (RTS, 1 when all are
// right), first_error its 0-based index (-1 when none). When the prompt is
// not an arithmetic chain the judge has no opinion (NaN, -1). Disposition:
// always keep. Config (optional): {"noise": eps, "seed": s} — with
// probability eps a wrong answer's first-error index is misreported, uniform
// over the solution's other step indices (an imperfect judge, for studies);
// "after_answer": "error" (default: text after the final answer makes the
// answer step wrong) or "ignore". ABI 1.2: the first wrong step's byte span
// is written to first_error_spans (the misreported step's, under noise).
// "format": "lines" judges word problems instead (WordProblemTask): one
// calculation per line checked against the reference steps, then
// "Answer: N" (ArithmeticSteps.swift says which lines count).
import CPrism
import Foundation
import PluginKit
import Synchronization

/// One instance; crosses the ABI as an opaque retained pointer.
final class StepJudge: PluginObject {
    /// The last error message, kept alive for last_error.
    let lastError = ErrorText()
    let noise: Double
    let afterAnswer: AfterAnswer
    let rng: Mutex<SplitMix>
    /// Format "lines" (one calculation per line, "Answer: N"), else chains.
    let lines: Bool

    init(noise: Double, seed: UInt64, afterAnswer: AfterAnswer, lines: Bool) {
        self.lines = lines
        self.noise = noise
        self.afterAnswer = afterAnswer
        rng = Mutex(SplitMix(seed: seed))
    }
}

/// Failures of `create`, per thread (read back with last_error(NULL)).
private let createErrors = CreateErrors()

// MARK: - feedback/1

private func assess(
    _ instance: UnsafeMutableRawPointer?,
    _ group: UnsafePointer<prism_feedback_group>,
    _ outScore: UnsafeMutablePointer<Double>,
    _ outFirstError: UnsafeMutablePointer<Int32>,
    _ outDisposition: UnsafeMutablePointer<Int32>
) -> prism_status {
    let g = group.pointee
    outDisposition.pointee = PRISM_DISPOSITION_KEEP
    let count = Int(g.count)
    guard count > 0 else { return PRISM_OK }
    let judgeInstance = StepJudge.from(instance)
    guard let format = judgeInstance.lines ? linesFormat(g, judgeInstance.afterAnswer)
                                           : chainFormat(g, judgeInstance.afterAnswer)
    else {  // not this judge's task: no opinion
        for i in 0..<count {
            outScore[i] = .nan
            outFirstError[i] = -1
        }
        return PRISM_OK
    }
    let spans = hasSpans(g) ? g.first_error_spans : nil
    judgeInstance.rng.withLock { rng in
        for i in 0..<count {
            let completion = g.completions[i].string[...]
            var verdict = format.verdict(completion)
            if let index = verdict.firstError {
                verdict.firstError = misreport(index, count: verdict.stepCount, noise: judgeInstance.noise, rng: &rng)
            }
            outScore[i] = verdict.score
            outFirstError[i] = Int32(verdict.firstError ?? -1)
            if let spans, let index = verdict.firstError {
                let span = format.span(index, completion, verdict.stepCount)
                spans[i] = prism_byte_span(begin: Int32(span.lowerBound), end: Int32(span.upperBound))
            }
        }
    }
    return PRISM_OK
}

/// How one task format is judged: a completion's verdict, and where its
/// step `index` is (for the first error, or the misreported one under noise).
private struct StepFormat {
    var verdict: (Substring) -> StepVerdict
    var span: (_ index: Int, _ completion: Substring, _ stepCount: Int) -> Range<Int>
}

/// Chains: the problem is parsed from the prompt; nil when it is not a chain.
private func chainFormat(_ g: prism_feedback_group, _ afterAnswer: AfterAnswer) -> StepFormat? {
    guard let problem = ArithmeticProblem(prompt: g.prompt.string[...]) else { return nil }
    return StepFormat(verdict: { judge($0, problem: problem, afterAnswer: afterAnswer) },
                      span: { index, completion, steps in stepSpan(index, in: completion, toEnd: index == steps - 1) })
}

/// Word problems: the reference calculations (reference_steps_json) and
/// integer answer; nil without them.
private func linesFormat(_ g: prism_feedback_group, _ afterAnswer: AfterAnswer) -> StepFormat? {
    let steps = (try? JSONDecoder().decode([String].self, from: Data(g.reference_steps_json.string.utf8))) ?? []
    let reference = steps.compactMap { Calculation(in: $0[...]) }
    guard !steps.isEmpty, reference.count == steps.count,
          let (answer, rest) = parseLeadingInteger(g.reference.string.trimmingCharacters(in: .whitespaces)[...]), rest.isEmpty
    else { return nil }
    return StepFormat(verdict: { judgeLines($0, reference: reference, answer: answer, afterAnswer: afterAnswer) },
                      span: { index, completion, steps in lineSpan(index, in: completion, stepCount: steps) })
}

private nonisolated(unsafe) let feedbackTable = immortal(prism_feedback_v1(
        struct_size: UInt32(MemoryLayout<prism_feedback_v1>.size),
        reserved: 0,
        assess: { instance, group, score, firstError, disposition in
            assess(instance, group, score, firstError, disposition)
        }
))

// MARK: - entry

private func create(_ config: prism_str, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> prism_status {
    createErrors.create(out) {
        let parsed = try PluginConfig(json: config.string, allowed: ["noise", "seed", "after_answer", "format"])
        let format = try parsed.string("format", default: "chain") ?? "chain"
        guard format == "chain" || format == "lines" else {
            throw ConfigError("config key 'format': expected \"chain\" or \"lines\", got \"\(format)\"")
        }
        let after = try parsed.string("after_answer", default: AfterAnswer.error.rawValue) ?? AfterAnswer.error.rawValue
        guard let afterAnswer = AfterAnswer(rawValue: after) else {
            throw ConfigError("config key 'after_answer': expected \"error\" or \"ignore\", got \"\(after)\"")
        }
        return StepJudge(noise: try parsed.double("noise", default: 0, in: 0...1),
                         seed: UInt64(try parsed.int("seed", default: 0, in: 0...Int(Int32.max))),
                         afterAnswer: afterAnswer, lines: format == "lines")
    }
}

private nonisolated(unsafe) let entry = immortal(prism_plugin_entry(
        struct_size: UInt32(MemoryLayout<prism_plugin_entry>.size),
        abi_major: UInt16(PRISM_ABI_MAJOR),
        abi_minor: UInt16(PRISM_ABI_MINOR),
        id: staticCString("org.prism.step-judge"),
        name: staticCString("Arithmetic step judge"),
        version: staticCString("1.0.0"),
        description: staticCString(
            "Finds the first wrong step of arithmetic-chain solutions; score = fraction of steps before it."),
        create: { _, config, out in create(config, out) },
        destroy: { StepJudge.destroy($0) },
        get_interface: { _, id in
            String(cString: id) == PRISM_FEEDBACK_V1_ID ? UnsafeRawPointer(feedbackTable) : nil
        },
        last_error: { StepJudge.lastError($0, creating: createErrors) }
))

@c(prism_get_plugin_entry)
public func prismGetPluginEntry(_ hostABIMajor: UInt16) -> UnsafePointer<prism_plugin_entry>? {
    hostABIMajor == UInt16(PRISM_ABI_MAJOR) ? UnsafePointer(entry) : nil
}
