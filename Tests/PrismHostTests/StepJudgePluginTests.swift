import PrismCore
import PrismHost
import PrismTestSupport
import Testing

/// The step judge (a Swift plugin) finds the first wrong step of arithmetic
/// chains; its score is the fraction of the n + 1 steps before it.
@Suite("Step-judge plugin")
struct StepJudgePluginTests {
    let judge: any FeedbackGenerator

    init() throws {
        judge = try PluginLibrary.load(TestSupport.plugin("PrismStepJudge")).instantiate().feedbackGenerator()
    }

    func assess(_ prompt: String, _ completions: [String]) throws -> Feedback {
        try judge.assess(FeedbackGroup(
            prompt: prompt, reference: "", completions: completions,
            rewards: completions.map { _ in 0 }, correct: completions.map { _ in false }))
    }

    @Test func firstWrongStepAndScore() throws {
        // 12+34+7 = 53: two arithmetic steps and the answer step, n + 1 = 3.
        let feedback = try assess("12+34+7=", [
            "12+34=46;46+7=53;#53",   // all right
            "12+34=47;47+7=54;#54",   // step 0 wrong
            "12+34=46;46+7=52;#52",   // step 1 wrong
            "12+34=46;46+7=53;#52",   // answer wrong
            "12+34=46",               // stops early: step 1 missing
            "",                       // nothing
            "12+34=46;46*7=322;#322", // wrong operator
            "12+35=47;47+7=54;#54",   // copies the wrong term
        ])
        #expect(feedback.firstErrors == [nil, 0, 1, 2, 1, 0, 1, 0])
        let third = 1.0 / 3
        let expected: [Double] = [1, 0, third, 2 * third, third, 0, third, 0]
        #expect(feedback.scores == expected)
        #expect(feedback.disposition == .keep)
    }

    @Test func operatorsAreEvaluatedLeftToRight() throws {
        let feedback = try assess("5-7*3=", ["5-7=-2;-2*3=-6;#-6", "5-7=-2;-2*3=-6;#-16"])
        #expect(feedback.firstErrors == [nil, 2])
    }

    @Test func whitespaceIsIgnored() throws {
        let feedback = try assess(" 1 + 2 = ", [" 1 + 2 = 3 ; # 3 "])
        #expect(feedback.firstErrors == [nil])
    }

    @Test func unparsablePromptGivesNoOpinion() throws {
        let feedback = try assess("What is the capital of France?", ["Paris", "#Paris"])
        #expect(feedback.scores.allSatisfy { $0.isNaN })
        #expect(feedback.firstErrors == [nil, nil])
    }

    @Test func unknownConfigKeysAreRefused() throws {
        let library = try PluginLibrary.load(TestSupport.plugin("PrismStepJudge"))
        #expect {
            _ = try library.instantiate(config: #"{"beta": 5}"#)
        } throws: { error in
            (error as? PluginError)?.reason
                == "create failed with status 2 (config error): config: unknown key 'beta' (expected one of: noise, seed, after_answer, format)"
        }
        #expect(throws: PluginError.self) { try library.instantiate(config: #"{"noise": 1.5}"#) }
        #expect {
            _ = try library.instantiate(config: #"{"after_answer": "drop"}"#)
        } throws: { error in
            (error as? PluginError)?.reason == "create failed with status 2 (config error): "
                + #"config key 'after_answer': expected "error" or "ignore", got "drop""#
        }
    }

    /// ABI 1.2: the byte span of the first wrong step in each completion,
    /// through the host's checks; the answer step's span runs to the end,
    /// a missing step is the empty span at the end, no error no span.
    @Test func firstErrorSpans() throws {
        let completions = [
            "12+34=46;46+7=53;#53",  // right
            "12+34=47;47+7=54;#54",  // step 0
            "12+34=46;46+7=52;#52",  // step 1
            "12+34=46;46+7=53;#53;1;#9",  // debris after the answer: the answer step
            "12+34=46",  // step 1 missing
            "½+34=46;x",  // non-ASCII: offsets are bytes
        ]
        let feedback = try assess("12+34+7=", completions)
        #expect(feedback.firstErrors == [nil, 0, 1, 2, 1, 0])
        #expect(feedback.firstErrorSpans == [nil, 0..<8, 9..<16, 17..<25, 8..<8, 0..<8])
        for (span, text) in zip(feedback.firstErrorSpans, completions) {
            if let span { #expect(span.upperBound <= text.utf8.count) }
        }
    }

    /// `after_answer`: text after a right answer is the answer step's error
    /// by default, and ignored with "ignore".
    @Test func textAfterTheAnswer() throws {
        let library = try PluginLibrary.load(TestSupport.plugin("PrismStepJudge"))
        let lenient = try library.instantiate(config: #"{"after_answer": "ignore"}"#).feedbackGenerator()
        let completions = ["12+34=46;46+7=53;#53;46+7=53", "12+34=46;46+7=53;#5312", "12+34=46;46+7=53;#53;", "12+34=46;46+7=53;#54;"]
        let group = FeedbackGroup(prompt: "12+34+7=", reference: "53", completions: completions,
                                  rewards: [0, 0, 0, 0], correct: [false, false, false, false])
        #expect(try judge.assess(group).firstErrors == [2, 2, nil, 2])
        #expect(try lenient.assess(group).firstErrors == [nil, 2, nil, 2])
    }

    /// noise = eps: a wrong answer's first error is misreported with
    /// probability eps, always as another valid index; right answers stay right.
    @Test func noisyJudgeMisreportsAtTheConfiguredRate() throws {
        let library = try PluginLibrary.load(TestSupport.plugin("PrismStepJudge"))
        let noisy = try library.instantiate(config: #"{"noise": 0.3, "seed": 11}"#).feedbackGenerator()
        let again = try library.instantiate(config: #"{"noise": 0.3, "seed": 11}"#).feedbackGenerator()
        let group = FeedbackGroup(
            prompt: "12+34+7=", reference: "53", completions: ["12+34=46;46+7=52;#52", "12+34=46;46+7=53;#53"],
            rewards: [0, 1], correct: [false, true])
        var misreported = 0
        let trials = 2000
        for _ in 0..<trials {
            let answer = try noisy.assess(group)
            #expect(try again.assess(group) == answer)  // same seed, same sequence
            let index = try #require(answer.firstErrors[0])
            #expect((0..<3).contains(index) && answer.scores[0] == Double(index) / 3)
            if index != 1 { misreported += 1 }
            #expect(answer.firstErrors[1] == nil && answer.scores[1] == 1)
        }
        // Binomial(2000, 0.3): mean 600, sd 20.5.
        #expect(abs(misreported - 600) < 100, "\(misreported) of \(trials) misreported")
    }

    /// "format": "lines" (the word problems): lines holding a digit are the
    /// steps, each must contain the reference calculation, then "Answer: N";
    /// spans are the lines. Prose around a calculation is fine.
    @Test func linesFormatJudgesWordProblems() throws {
        let lines = try PluginLibrary.load(TestSupport.plugin("PrismStepJudge"))
            .instantiate(config: #"{"format": "lines"}"#).feedbackGenerator()
        let completions = [
            "12 + 34 = 46\n46 - 7 = 39\nAnswer: 39",                      // right
            "Let me think.\nFirst 12+34=46.\nThen 46 - 7 = 39.\n\nAnswer: 39",  // commentary and prose: right
            "12 + 34 = 45\n45 - 7 = 38\nAnswer: 38",                      // step 0
            "12 + 34 = 46\n46 - 7 = 40\nAnswer: 40",                      // step 1
            "12 + 34 = 46\n46 - 7 = 39\nAnswer: 40",                      // answer
            "12 + 34 = 46",                                               // stops: step 1 missing
            "12 + 34 = 46\n46 - 7 = 39\nAnswer: 39\n1 + 1 = 2",            // text after the answer
            "12 × 34 = 46\n46 - 7 = 39\nAnswer: 39",                      // wrong operator
        ]
        let group = FeedbackGroup(prompt: "Mia has 12 shells. …", reference: "39", referenceSteps: ["12 + 34 = 46", "46 - 7 = 39"],
                                  completions: completions, rewards: completions.map { _ in 0 },
                                  correct: completions.map { _ in false })
        let feedback = try lines.assess(group)
        #expect(feedback.firstErrors == [nil, nil, 0, 1, 2, 1, 2, 0])
        #expect(feedback.scores[3] == 1.0 / 3)
        let spans = feedback.firstErrorSpans
        let text = { (i: Int) -> String in
            guard let span = spans[i] else { return "-" }
            return String(decoding: Array(completions[i].utf8)[span], as: UTF8.self)
        }
        #expect(text(0) == "-" && text(2) == "12 + 34 = 45" && text(3) == "46 - 7 = 40" && text(4) == "Answer: 40")
        #expect(spans[5] == completions[5].utf8.count..<completions[5].utf8.count)
        #expect(text(6) == "Answer: 39\n1 + 1 = 2")
        // Without reference steps the lines judge has no opinion; a chain judge has none on a story.
        var bare = group
        bare.referenceSteps = []
        #expect(try lines.assess(bare).scores.allSatisfy(\.isNaN))
        #expect(try judge.assess(group).scores.allSatisfy(\.isNaN))
        #expect(throws: PluginError.self) {
            try PluginLibrary.load(TestSupport.plugin("PrismStepJudge")).instantiate(config: #"{"format": "paragraphs"}"#)
        }
    }
}
