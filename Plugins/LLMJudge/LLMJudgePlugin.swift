// The LLM step judge as a Prism plugin (prism.feedback/1): asks a model
// behind an OpenAI-compatible /v1/chat/completions endpoint for the first
// wrong step of each wrong completion of a group.
//
// Each completion is split into steps (config "steps"), the prompt numbers
// them from 0 and asks for the earliest wrong one or -1 (the ProcessBench
// convention), with the reference answer and steps when the task has them.
// Requests run in parallel (max_parallel), each with a deadline
// (timeout_s), retried with exponential backoff and jitter on timeouts,
// lost connections, 429 and 5xx (Retry-After honoured). Score = share of
// steps before the first wrong one (1 with none); the span of that step is
// written (ABI 1.2). A verdict that cannot be read, or a request that fails
// for good, fails the whole group (the host leaves it undiversified and
// counts the error); tokens (the API's usage) and failures by cause go to
// the ABI 1.4 report. The API key is read from the environment variable
// the config names and is never written anywhere.
// Documentation/Plugins.md lists every key and the default prompt.
import CPrism
import Foundation
import PluginKit

final class LLMJudge: PluginObject {
    let lastError = ErrorText()
    let client: ChatClient
    let rule: StepRule
    let template: PromptTemplate
    let judgeAll: Bool
    let maxParallel: Int

    init(client: ChatClient, rule: StepRule, template: PromptTemplate, judgeAll: Bool, maxParallel: Int) {
        self.client = client
        self.rule = rule
        self.template = template
        self.judgeAll = judgeAll
        self.maxParallel = maxParallel
    }

    /// One completion's verdict: the first wrong step and its span, or why none could be had.
    enum Verdict {
        case none
        case wrong(index: Int, span: Range<Int>, steps: Int)
        case failed(String)
    }

    /// Judges the completions of a group; `judge(i)` says which to ask about.
    func verdicts(prompt: String, reference: String, referenceSteps: [String], completions: [String],
                  judge: (Int) -> Bool, counters: ReportCounters) -> [Verdict?] {
        let results = VerdictTable(count: completions.count)
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = maxParallel
        for (i, completion) in completions.enumerated() where judge(i) {
            let steps = rule.steps(completion)
            guard !steps.isEmpty else {
                // Nothing to check: the first (missing) step is wrong, at the end of the text.
                let end = completion.utf8.count
                results.set(i, .wrong(index: 0, span: end..<end, steps: 0))
                continue
            }
            let bytes = Array(completion.utf8)
            let numbered = steps.enumerated().map { k, range in
                "Step \(k): " + String(decoding: bytes[range], as: UTF8.self)
            }.joined(separator: "\n")
            let user: String
            do {
                user = try template.render([
                    "problem": prompt, "reference": reference.isEmpty ? "(not given)" : reference,
                    "reference_steps": referenceSteps.isEmpty ? "(not given)" : referenceSteps.map { "- " + $0 }.joined(separator: "\n"),
                    "steps": numbered, "step_count": String(steps.count), "last_index": String(steps.count - 1),
                ])
            } catch {
                results.set(i, .failed("\(error)"))
                continue
            }
            let client = self.client
            queue.addOperation {
                switch client.ask(user, counters: counters) {
                case .failed(let why):
                    results.set(i, .failed(why))
                case .reply(let reply):
                    guard let index = parseVerdict(reply, stepCount: steps.count) else {
                        counters.unparseableAnswer()
                        let shown = reply.count > 120 ? String(reply.prefix(120)) + "…" : reply
                        results.set(i, .failed("unparseable verdict \"\(shown.replacingOccurrences(of: "\n", with: " "))\" "
                            + "(expected a step index in -1...\(steps.count - 1))"))
                        return
                    }
                    results.set(i, index < 0 ? .none : .wrong(index: index, span: steps[index], steps: steps.count))
                }
            }
        }
        queue.waitUntilAllOperationsAreFinished()
        return results.values
    }
}

/// Per-completion verdicts written by parallel requests.
private final class VerdictTable: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [LLMJudge.Verdict?]
    init(count: Int) { storage = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ verdict: LLMJudge.Verdict) { lock.withLock { storage[i] = verdict } }
    var values: [LLMJudge.Verdict?] { lock.withLock { storage } }
}

private let createErrors = CreateErrors()

// MARK: - feedback/1

private func assess(
    _ instance: UnsafeMutableRawPointer?,
    _ group: UnsafePointer<prism_feedback_group>,
    _ outScore: UnsafeMutablePointer<Double>,
    _ outFirstError: UnsafeMutablePointer<Int32>,
    _ outDisposition: UnsafeMutablePointer<Int32>
) -> prism_status {
    LLMJudge.call(instance) { judge in
        let g = group.pointee
        outDisposition.pointee = PRISM_DISPOSITION_KEEP
        let count = Int(g.count)
        let counters = ReportCounters()
        defer {
            // A host before ABI 1.4 has no report field (its struct is shorter).
            if hasReport(g) {
                let report = g.report
                report.pointee.prompt_tokens += UInt64(counters.promptTokens)
                report.pointee.completion_tokens += UInt64(counters.completionTokens)
                report.pointee.requests += UInt32(counters.requests)
                report.pointee.retries += UInt32(counters.retries)
                report.pointee.cache_hits += UInt32(counters.cacheHits)
                report.pointee.unparseable += UInt32(counters.unparseable)
                report.pointee.timeouts += UInt32(counters.timeouts)
                report.pointee.http_errors += UInt32(counters.httpErrors)
                report.pointee.connection_errors += UInt32(counters.connectionErrors)
            }
        }
        guard count > 0 else { return PRISM_OK }
        let completions = (0..<count).map { g.completions[$0].string }
        let steps = (try? JSONDecoder().decode([String].self, from: Data(g.reference_steps_json.string.utf8))) ?? []
        let verdicts = judge.verdicts(
            prompt: g.prompt.string, reference: g.reference.string, referenceSteps: steps, completions: completions,
            judge: { judge.judgeAll || g.correct[$0] == 0 }, counters: counters)
        let failures = verdicts.enumerated().compactMap { i, verdict -> String? in
            if case .failed(let why)? = verdict { return "completion \(i): \(why)" }
            return nil
        }
        if !failures.isEmpty {
            let status = counters.timeouts > 0 && counters.httpErrors + counters.connectionErrors + counters.unparseable == 0
                ? PRISM_E_TIMEOUT : PRISM_E_IO
            throw PluginFailure(status: status, message: "\(failures.count) of \(verdicts.compactMap { $0 }.count) verdicts failed; "
                + failures.prefix(3).joined(separator: "; ") + (failures.count > 3 ? "; …" : ""))
        }
        let spans = hasSpans(g) ? g.first_error_spans : nil
        for (i, verdict) in verdicts.enumerated() {
            switch verdict {
            case nil, .none?:  // not asked (a correct answer), or every step right
                outScore[i] = 1
                outFirstError[i] = -1
            case .wrong(let index, let span, let stepCount)?:
                outScore[i] = stepCount == 0 ? 0 : Double(index) / Double(stepCount)
                outFirstError[i] = Int32(index)
                spans?[i] = prism_byte_span(begin: Int32(span.lowerBound), end: Int32(span.upperBound))
            case .failed?:
                break  // handled above
            }
        }
        return PRISM_OK
    }
}

private nonisolated(unsafe) let feedbackTable = immortal(prism_feedback_v1(
        struct_size: UInt32(MemoryLayout<prism_feedback_v1>.size),
        reserved: 0,
        assess: { instance, group, score, firstError, disposition in
            assess(instance, group, score, firstError, disposition)
        }
))

// MARK: - entry

/// The config keys (Documentation/Plugins.md).
let configKeys = ["base_url", "model", "api_key_env", "steps", "separator", "prompt_template", "system_prompt", "judge",
                  "max_parallel", "timeout_s", "max_retries", "backoff_s", "max_backoff_s", "temperature", "max_tokens",
                  "cache_dir", "api_key"]

func makeJudge(_ json: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> LLMJudge {
    let parsed = try PluginConfig(json: json, allowed: configKeys)
    if parsed.has("api_key") {
        throw ConfigError("config key 'api_key': not accepted (a run writes its config to disk); put the key in an "
            + "environment variable and name it with api_key_env")
    }
    guard let base = try parsed.string("base_url", default: nil), !base.isEmpty else {
        throw ConfigError("config key 'base_url': required, e.g. \"http://127.0.0.1:8080/v1\" (llama-server) or "
            + "\"https://api.openai.com/v1\"")
    }
    guard let baseURL = URL(string: base), let scheme = baseURL.scheme, scheme == "http" || scheme == "https",
          baseURL.host != nil else {
        throw ConfigError("config key 'base_url': expected an http:// or https:// URL, got \"\(base)\"")
    }
    let endpoint = base.hasSuffix("/chat/completions") ? baseURL
        : URL(string: (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/chat/completions")!
    var apiKey: String?
    if let name = try parsed.string("api_key_env", default: nil), !name.isEmpty {
        guard let value = environment[name], !value.isEmpty else {
            throw ConfigError("config key 'api_key_env': the environment variable \(name) is not set")
        }
        apiKey = value
    }
    let rule: StepRule
    switch try parsed.string("steps", default: "lines") ?? "lines" {
    case "lines": rule = .lines
    case "paragraphs": rule = .paragraphs
    case "separator":
        guard let separator = try parsed.string("separator", default: nil), !separator.isEmpty else {
            throw ConfigError("config key 'separator': required (non-empty) with \"steps\": \"separator\"")
        }
        rule = .separator(separator)
    case let other:
        throw ConfigError("config key 'steps': expected \"lines\", \"paragraphs\" or \"separator\", got \"\(other)\"")
    }
    if parsed.has("separator"), rule == .lines || rule == .paragraphs {
        throw ConfigError("config key 'separator': only with \"steps\": \"separator\"")
    }
    let template: PromptTemplate
    do {
        template = try PromptTemplate(try parsed.string("prompt_template", default: PromptTemplate.standard) ?? PromptTemplate.standard)
    } catch let error as PromptTemplate.TemplateError {
        throw ConfigError("config key 'prompt_template': \(error.description)")
    }
    let judge = try parsed.string("judge", default: "incorrect") ?? "incorrect"
    guard judge == "incorrect" || judge == "all" else {
        throw ConfigError("config key 'judge': expected \"incorrect\" or \"all\", got \"\(judge)\"")
    }
    var cache = try parsed.string("cache_dir", default: nil)
    if let path = cache, path.isEmpty { cache = nil }
    if let path = cache, path.hasPrefix("~/") { cache = NSHomeDirectory() + String(path.dropFirst(1)) }
    let settings = ChatSettings(
        endpoint: endpoint, model: try parsed.string("model", default: "") ?? "", apiKey: apiKey,
        timeout: try parsed.double("timeout_s", default: 60, in: 0.05...3600),
        maxRetries: try parsed.int("max_retries", default: 3, in: 0...10),
        backoff: try parsed.double("backoff_s", default: 1, in: 0...60),
        maxBackoff: try parsed.double("max_backoff_s", default: 30, in: 0...600),
        temperature: try parsed.double("temperature", default: 0, in: 0...2),
        maxTokens: try parsed.int("max_tokens", default: 256, in: 1...32768),
        cacheDirectory: cache, systemPrompt: try parsed.string("system_prompt", default: "") ?? "")
    return LLMJudge(client: ChatClient(settings), rule: rule, template: template, judgeAll: judge == "all",
                    maxParallel: try parsed.int("max_parallel", default: 4, in: 1...64))
}

private func create(_ config: prism_str, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> prism_status {
    createErrors.create(out) { try makeJudge(config.string) }
}

private nonisolated(unsafe) let entry = immortal(prism_plugin_entry(
        struct_size: UInt32(MemoryLayout<prism_plugin_entry>.size),
        abi_major: UInt16(PRISM_ABI_MAJOR),
        abi_minor: UInt16(PRISM_ABI_MINOR),
        id: staticCString("org.prism.llm-judge"),
        name: staticCString("LLM step judge"),
        version: staticCString("1.0.0"),
        description: staticCString(
            "Asks a model behind an OpenAI-compatible chat endpoint for the first wrong step of each wrong answer."),
        create: { _, config, out in create(config, out) },
        destroy: { LLMJudge.destroy($0) },
        get_interface: { _, id in
            String(cString: id) == PRISM_FEEDBACK_V1_ID ? UnsafeRawPointer(feedbackTable) : nil
        },
        last_error: { LLMJudge.lastError($0, creating: createErrors) }
))

@c(prism_get_plugin_entry)
public func prismGetPluginEntry(_ hostABIMajor: UInt16) -> UnsafePointer<prism_plugin_entry>? {
    hostABIMajor == UInt16(PRISM_ABI_MAJOR) ? UnsafePointer(entry) : nil
}
