import Foundation
import PrismCore
import PrismHost
import PrismTestSupport
import Testing

/// Bare C functions (Tests/Fixtures/functions.c, an ordinary `cc -shared`
/// library) as rewards and judges through libffi: every result type, both
/// text types, the argument order, the checks on what comes back, and one
/// error per malformed declaration.
@Suite("Function plugins")
struct FunctionPluginTests {
    let library: String

    init() throws {
        let directory = try TestSupport.temporaryDirectory("functions")
        library = try TestSupport.compileProgram(
            [TestSupport.fixture("functions.c")], name: "libfunctions.so",
            flags: ["-std=c11", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror"], in: directory)
    }

    func reward(_ symbol: String, _ signature: String, correctAt: Double = 1) throws -> any RewardFunction {
        try FunctionPlugin.reward(FunctionDeclaration(role: .reward, key: "reward.function", library: library,
                                                      symbol: symbol, signature: signature, correctAt: correctAt))
    }

    func judge(_ symbol: String, _ signature: String, separator: String = "\n") throws -> any FeedbackGenerator {
        try FunctionPlugin.judge(FunctionDeclaration(role: .judge, key: "judge.function", library: library,
                                                     symbol: symbol, signature: signature, separator: separator))
    }

    @Test func everyResultTypeAndBothTextTypes() throws {
        let samples = [RewardSample(prompt: "1+2=", completion: "1+2=3;#3", reference: "3"),
                       RewardSample(prompt: "1+2=", completion: "1+2=4;#4", reference: "3")]
        #expect(try reward("answer_reward", "d(ss)").score(samples)
            == [RewardScore(reward: 1, correct: true), RewardScore(reward: 0.25, correct: false)])
        #expect(try reward("answer_reward_i", "i(bb)").score(samples)
            == [RewardScore(reward: 1, correct: true), RewardScore(reward: 0, correct: false)])
        // float: 8 bytes / 100, correct from 0.05 on.
        let lengths = try reward("length_reward", "f(s)", correctAt: 0.05).score(samples)
        #expect(abs(lengths[0].reward - 0.08) < 1e-7 && lengths[0].correct)
        // A buffer's length is its byte count, NUL bytes included (a string would stop at the first).
        let withNul = RewardSample(prompt: "", completion: "ab\u{0}cd", reference: "")
        #expect(try reward("echo_length", "l(bs)").score([withNul]).map(\.reward) == [5])
        // The four texts in their documented order.
        #expect(try reward("all_texts", "d(ssss)")
            .score([RewardSample(prompt: "p", completion: "c", reference: "r", metadataJSON: "{}")]).map(\.reward) == [1])
    }

    @Test func judgeFindsTheFirstWrongStepAndItsBytes() throws {
        let group = FeedbackGroup(
            prompt: "1+2+3=", reference: "6",
            completions: ["1+2=3;3+3=6;#6", "1+2=3;3+3=7;#7", "1+2=4;4+3=7;#7", ""],
            rewards: [1, 0, 0, 0], correct: [true, false, false, false])
        let feedback = try judge("chain_judge", "i(s)", separator: ";").assess(group)
        #expect(feedback.firstErrors == [nil, 1, 0, nil])
        #expect(feedback.firstErrorSpans == [nil, 6..<11, 0..<5, nil])
        #expect(feedback.scores == [1, 1.0 / 3, 0, 1])
    }

    @Test func answersOutsideTheContractAreErrors() throws {
        let group = FeedbackGroup(prompt: "p", reference: "r", completions: ["a\nb"], rewards: [0], correct: [false])
        let error = #expect(throws: PluginError.self) { try judge("out_of_range_judge", "l(s)").assess(group) }
        #expect(error?.description == "judge.function (out_of_range_judge): first wrong step 99 for completion 0, "
            + "which has 2 steps; expected -1 or 0...1")
        let infinite = #expect(throws: PluginError.self) {
            try reward("infinite_reward", "d(s)").score([RewardSample(prompt: "", completion: "x", reference: "")])
        }
        #expect(infinite?.code == .invalidOutput)
        #expect(infinite?.description.contains("reward inf for sample 0; expected a finite number or NaN") == true)
    }

    /// Each malformed declaration gets its own code and one line naming the key.
    @Test func malformedDeclarationsEachHaveTheirOwnError() throws {
        func failure(_ body: () throws -> Void) -> PluginError? {
            do {
                try body()
                return nil
            } catch let error as PluginError {
                return error
            } catch {
                return nil
            }
        }
        let unknown = failure { _ = try reward("answer_reward", "d(sx)") }
        #expect(unknown?.code == .badSignature)
        #expect(unknown?.description == "reward.function: signature \"d(sx)\": unknown type letter 'x' at position 4; "
            + "expected i (int32), l (int64), f (float), d (double), s (UTF-8 string) or b (buffer + length)")
        let malformed = failure { _ = try reward("answer_reward", "dss") }
        #expect(malformed?.code == .badSignature)
        let result = failure { _ = try judge("answer_reward", "d(ss)") }
        #expect(result?.code == .signatureMismatch)
        #expect(result?.description == "judge.function: signature \"d(ss)\" does not fit a judge: the result must be "
            + "i or l (the first wrong step, -1 for none), got d (double)")
        let argument = failure { _ = try reward("answer_reward", "d(sd)") }
        #expect(argument?.description == "reward.function: signature \"d(sd)\" does not fit a reward: argument 2 is "
            + "the reference answer, a text (s or b), not d (double)")
        let tooMany = failure { _ = try reward("answer_reward", "d(sssss)") }
        #expect(tooMany?.code == .signatureMismatch)
        let symbol = failure { _ = try reward("no_such_function", "d(ss)") }
        #expect(symbol?.code == .missingSymbol)
        #expect(symbol?.description == "reward.function: library \(library) does not export the function 'no_such_function'")
        let missing = failure {
            _ = try FunctionPlugin.reward(FunctionDeclaration(role: .reward, key: "reward.function",
                                                              library: "/nonexistent/libmine.so", symbol: "f", signature: "d(s)"))
        }
        #expect(missing?.code == .fileMissing)
        let notLoadable = failure {
            _ = try FunctionPlugin.reward(FunctionDeclaration(role: .reward, key: "reward.function",
                                                              library: TestSupport.fixture("functions.c"), symbol: "f", signature: "d(s)"))
        }
        #expect(notLoadable?.code == .notSharedObject)
        #expect(notLoadable?.description.hasPrefix("reward.function: library \(TestSupport.fixture("functions.c")) does not load: ") == true)
        // The signature is checked before the library is touched: a bad one never loads it.
        let first = failure {
            _ = try FunctionPlugin.reward(FunctionDeclaration(role: .reward, key: "reward.function",
                                                              library: "/nonexistent/libmine.so", symbol: "f", signature: "s(s)"))
        }
        #expect(first?.code == .signatureMismatch)
        #expect(Set([unknown, malformed, result, symbol, missing, notLoadable].compactMap { $0?.description }).count == 6)
    }
}
