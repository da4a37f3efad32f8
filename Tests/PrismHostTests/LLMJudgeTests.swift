import Foundation
import PrismCore
import PrismHost
import PrismTestSupport
import Testing

/// The LLM judge plugin against a real HTTP server on 127.0.0.1 with scripted
/// answers (Tests/Servers/scripted_chat_server.py): every outcome the
/// documentation promises, through the host's adapter and its ABI 1.4 report.
@Suite("LLM judge over HTTP")
struct LLMJudgeTests {
    let server: ScriptedServer

    init() throws {
        // "slow" answers only after 20 s, or never if the client hangs up first.
        server = try ScriptedServer(environment: ["SLOW_SECONDS": "20"])
    }

    /// The plugin as a judge with `extra` config keys.
    func judge(_ extra: [String: Any] = [:], baseURL: String? = nil) throws -> any FeedbackGenerator {
        let settings: [String: Any] = ["base_url": baseURL ?? server.baseURL, "max_retries": 2, "backoff_s": 0]
        let config = String(decoding: try JSONSerialization.data(withJSONObject: settings.merging(extra) { $1 }), as: UTF8.self)
        return try PluginLibrary.load(TestSupport.plugin("PrismLLMJudge")).instantiate(config: config).feedbackGenerator()
    }

    /// A group of wrong answers, one line per step; `marker` picks the server's script.
    func group(_ completions: [String], correct: [Bool]? = nil) -> FeedbackGroup {
        FeedbackGroup(prompt: "1+2+4=", reference: "7", referenceSteps: ["1+2=3", "3+4=7"], completions: completions,
                      rewards: completions.map { _ in 0 }, correct: correct ?? completions.map { _ in false })
    }

    /// What a judge call gave: its feedback or error, and the report.
    func ask(_ judge: any FeedbackGenerator, _ group: FeedbackGroup) -> (Feedback?, PluginError?, FeedbackReport) {
        var report = FeedbackReport()
        do {
            return (try judge.assess(group, report: &report), nil, report)
        } catch {
            return (nil, error as? PluginError, report)
        }
    }

    @Test func aCorrectVerdictGivesTheFirstErrorItsSpanAndTheUsage() throws {
        let completions = ["1+2=3\n3+4=7\n#7", "1+2=3\n3+4=8\n#8", "1+2=4\n4+4=8\n#8", "1+2=3\n3+4=7\n#7"]
        let (feedback, error, report) = ask(try judge(), group(completions, correct: [true, false, false, false]))
        #expect(error == nil, "\(String(describing: error))")
        #expect(feedback?.firstErrors == [nil, 1, 0, nil])  // the correct answer is not asked about
        #expect(feedback?.scores == [1, 1.0 / 3, 0, 1])
        #expect(feedback?.firstErrorSpans == [nil, 6..<11, 0..<5, nil])
        #expect(report.requests == 3 && report.retries == 0)
        #expect(report.completionTokens == 3 && report.promptTokens > 30)
        #expect(report.unparseable == 0 && report.httpErrors == 0 && report.timeouts == 0 && report.connectionErrors == 0)
    }

    @Test func aVerdictInProseOrJSONIsRead() throws {
        let (feedback, error, _) = ask(try judge(), group(["1+2=3\nCASE=prose\n#7", "1+2=3\nCASE=json\n#7",
                                                            "1+2=3\nCASE=sentence\n#7"]))
        #expect(error == nil, "\(String(describing: error))")
        #expect(feedback?.firstErrors == [1, 1, 1])
        // A decimal is not an index: no verdict rather than a guess at 1.
        let (_, decimal, report) = ask(try judge(), group(["1+2=3\nCASE=decimal\n#7"]))
        #expect(decimal?.description.contains("unparseable verdict \"About 1.5 of the steps look fine.\"") == true)
        #expect(report.unparseable == 1)
    }

    @Test func garbageIsAnErrorForTheGroupCountedNeverAGuess() throws {
        let (feedback, error, report) = ask(try judge(), group(["1+2=3\n3+4=7\n#7", "1+2=3\nCASE=garbage\n#7"]))
        #expect(feedback == nil)
        #expect(error?.description.contains("1 of 2 verdicts failed; completion 1: unparseable verdict "
            + "\"I would rather talk about the weather.\" (expected a step index in -1...2)") == true, "\(String(describing: error))")
        #expect(report.unparseable == 1 && report.requests == 2 && report.retries == 0)  // not retried: the model said it
    }

    @Test func anEmptyOrTruncatedBodyIsRetriedThenFails() throws {
        let (_, empty, emptyReport) = ask(try judge(), group(["1+2=3\nCASE=empty\n#7"]))
        #expect(empty?.description.contains("completion 0: an empty body (3 attempts)") == true, "\(String(describing: empty))")
        #expect(emptyReport.requests == 3 && emptyReport.retries == 2 && emptyReport.httpErrors == 3)
        let (_, truncated, truncatedReport) = ask(try judge(), group(["1+2=3\nCASE=truncated\n#7"]))
        #expect(truncated != nil)
        #expect(truncatedReport.requests == 3 && truncatedReport.retries == 2)
        // However libcurl words it, a body cut short is counted as a lost connection or a malformed body.
        #expect(truncatedReport.connectionErrors + truncatedReport.httpErrors == 3)
    }

    /// The server holds a "slow" request until the client hangs up (or 20 s):
    /// a timeout reported for both attempts means the deadline ended each,
    /// however busy the machine (no upper bound on the time to race). The
    /// lower bound cannot race: each attempt waited its whole deadline (a
    /// sub-second timeout_s once ended every attempt at once; the first
    /// request warms the process's URLSession, whose first use takes most
    /// of a second and would hide that).
    @Test func aSlowAnswerPastTheDeadlineIsATimeout() throws {
        let judge = try judge(["timeout_s": 0.3, "max_retries": 1])
        _ = ask(judge, group(["1+2=3\nCASE=prose\n#7"]))
        let clock = ContinuousClock()
        let started = clock.now
        let (feedback, error, report) = ask(judge, group(["1+2=3\nCASE=slow\n#7"]))
        #expect(clock.now - started >= .milliseconds(600))
        #expect(feedback == nil)
        #expect(error?.description.contains("completion 0: no answer within 0.3 s (timeout_s) (2 attempts)") == true,
                "\(String(describing: error))")
        #expect(report.timeouts == 2 && report.requests == 2, "\(report)")
    }

    @Test func tooManyRequestsWaitsForRetryAfterThenSucceeds() throws {
        let started = Date()
        let (feedback, error, report) = ask(try judge(), group(["1+2=3\nCASE=ratelimit\n#7"]))
        #expect(error == nil, "\(String(describing: error))")
        #expect(feedback?.firstErrors == [1])
        #expect(report.requests == 2 && report.retries == 1 && report.httpErrors == 1)
        #expect(Date().timeIntervalSince(started) >= 1.0)  // Retry-After: 1 was honoured (backoff_s is 0)
    }

    @Test func aServerErrorIsRetriedAndTheSecondAnswerCounts() throws {
        let (feedback, error, report) = ask(try judge(), group(["1+2=3\nCASE=flaky\n#7"]))
        #expect(error == nil, "\(String(describing: error))")
        #expect(feedback?.firstErrors == [1])
        #expect(report.requests == 2 && report.retries == 1 && report.httpErrors == 1)
    }

    @Test func aClientErrorIsNotRetried() throws {
        let (_, error, report) = ask(try judge(), group(["1+2=3\nCASE=missing\n#7"]))
        #expect(error?.description.contains("completion 0: HTTP 404: {\"error\": {\"message\": \"model not found\"}}") == true,
                "\(String(describing: error))")
        #expect(report.requests == 1 && report.httpErrors == 1)
    }

    @Test func aRefusedConnectionIsRetriedThenFails() throws {
        // Port 1 on the loopback: nothing listens there, so the connection is refused.
        let (_, error, report) = ask(try judge(baseURL: "http://127.0.0.1:1/v1"), group(["1+2=3\n3+4=8\n#8"]))
        #expect(error?.description.contains("connection refused (3 attempts)") == true, "\(String(describing: error))")
        #expect(report.connectionErrors == 3 && report.requests == 3)
    }

    @Test func theCacheAnswersARepeatedRequestWithoutTheServer() throws {
        let cache = try TestSupport.temporaryDirectory("llm-judge-cache").path
        let judge = try judge(["cache_dir": cache])
        let wrong = group(["1+2=3\n3+4=9\n#9", "1+2=5\n5+4=9\n#9"])
        let (first, _, firstReport) = ask(judge, wrong)
        let before = try server.stats().requests.values.reduce(0, +)
        let (second, _, secondReport) = ask(judge, wrong)
        let after = try server.stats().requests.values.reduce(0, +)
        #expect(first != nil && first == second)
        #expect(firstReport.requests == 2 && firstReport.cacheHits == 0, "\(firstReport) \(String(describing: first))")
        #expect(secondReport.requests == 0 && secondReport.cacheHits == 2 && secondReport.promptTokens == 0)
        #expect(after == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".json") }.count == 2)
    }

    @Test func theKeyComesFromTheEnvironmentAndIsNeverShown() throws {
        let keyed = try ScriptedServer(environment: ["EXPECTED_AUTHORIZATION": "Bearer sk-test-5150"])
        setenv("PRISM_TEST_LLM_JUDGE_KEY", "sk-test-5150", 1)
        let judge = try judge(["api_key_env": "PRISM_TEST_LLM_JUDGE_KEY"], baseURL: keyed.baseURL)
        let (feedback, error, _) = ask(judge, group(["1+2=3\n3+4=8\n#8"]))
        #expect(error == nil && feedback?.firstErrors == [1], "\(String(describing: error))")
        #expect(try keyed.stats().authorization == ["Bearer sk-test-5150"])
        // Without the key the server says 401; the message does not carry the key.
        let unkeyed = try self.judge(baseURL: keyed.baseURL)
        let (_, refused, _) = ask(unkeyed, group(["1+2=3\n3+4=8\n#8"]))
        #expect(refused?.description.contains("HTTP 401") == true && refused?.description.contains("sk-test") == false)
        // A key in the config itself is refused (configs are written to run directories).
        let inline = #expect(throws: PluginError.self) {
            _ = try PluginLibrary.load(TestSupport.plugin("PrismLLMJudge"))
                .instantiate(config: #"{"base_url": "\#(keyed.baseURL)", "api_key": "sk-test-5150"}"#)
        }
        #expect(inline?.description.contains("config key 'api_key': not accepted") == true)
        #expect(inline?.description.contains("sk-test") == false)
        let missing = #expect(throws: PluginError.self) {
            _ = try PluginLibrary.load(TestSupport.plugin("PrismLLMJudge"))
                .instantiate(config: #"{"base_url": "\#(keyed.baseURL)", "api_key_env": "PRISM_TEST_NO_SUCH_VARIABLE"}"#)
        }
        #expect(missing?.description.contains("the environment variable PRISM_TEST_NO_SUCH_VARIABLE is not set") == true)
    }
}
