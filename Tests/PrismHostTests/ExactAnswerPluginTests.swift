import Foundation
import PrismCore
import PrismHost
import PrismTestSupport
import Testing

/// The exact-answer reward, in plain C: built by SwiftPM, and built again
/// here by `cc` from `SDK/include` alone, and both must score alike.
@Suite("Exact-answer reward plugin")
struct ExactAnswerPluginTests {
    /// (completion, reference, expected reward; NaN = not applicable)
    static let cases: [(String, String, Double)] = [
        ("12+34=46;#46", "46", 1),
        ("12+34=46;#47", "46", 0),
        ("#  46 \n", "46", 1),               // whitespace around the answer
        ("#046", "46", 1),                    // leading zeros
        ("#0", "-0", 1),                      // -0 is 0
        ("#+46", "46", 1),
        ("#-46", "46", 0),
        ("12+34=46;46+7=53", "53", 1),        // no marker: last integer
        ("no digits here", "53", 0),
        ("#53#", "53", 1),                    // repeated marker, trailing empty
        ("##53", "53", 1),
        ("#12#53", "53", 1),                  // last marker wins
        ("#53;", "53", 1),                    // trailing punctuation
        ("#", "53", 0),                       // empty answer
        ("#123456789012345678901234567890", "123456789012345678901234567890", 1),  // huge
        ("#123456789012345678901234567891", "123456789012345678901234567890", 0),
        ("#5e1", "50", 0),                    // not an integer
        ("#yes", "yes", 1),                   // non-numeric reference: exact text
        ("#Yes", "yes", 0),
        ("#½ 🚀", "½ 🚀", 1),                 // non-ASCII
        ("#46", "", .nan),                    // no reference: not applicable
    ]

    static func check(_ reward: any RewardFunction) throws {
        let samples = cases.map { RewardSample(prompt: "p", completion: $0.0, reference: $0.1) }
        let scores = try reward.score(samples)
        for (score, c) in zip(scores, cases) {
            if c.2.isNaN {
                #expect(score.reward.isNaN && !score.correct, "\(c)")
            } else {
                #expect(score.reward == c.2 && score.correct == (c.2 == 1), "\(c) gave \(score)")
            }
        }
    }

    @Test func swiftPMBuiltPluginScores() throws {
        let library = try PluginLibrary.load(TestSupport.plugin("PrismExactAnswer"))
        #expect(library.id == "org.prism.exact-answer")
        try Self.check(library.instantiate().rewardFunction())
    }

    @Test func pluginBuiltWithCCFromTheSDKAloneLoadsAndScores() throws {
        let directory = try TestSupport.temporaryDirectory("cc-plugin")
        let path = try TestSupport.compilePlugin(
            [TestSupport.packageRoot.appendingPathComponent("Plugins/ExactAnswer/exact_answer.c").path],
            name: "ExactAnswerCC", in: directory)
        let instance = try PluginLibrary.load(path).instantiate()
        #expect(instance.interfaces == ["prism.reward/1"])
        try Self.check(instance.rewardFunction())
    }

    /// A string marker ("Answer:", the word problems' last line): the text
    /// after its last occurrence; a marker that is not there means no answer.
    @Test func stringMarker() throws {
        let library = try PluginLibrary.load(TestSupport.plugin("PrismExactAnswer"))
        let reward = try library.instantiate(config: #"{"marker": "Answer:", "require_marker": true}"#).rewardFunction()
        let cases: [(String, Double)] = [
            ("12 + 34 = 46\n46 - 7 = 39\nAnswer: 39", 1),
            ("Answer: 39.", 1),
            ("Answer: 12\nAnswer: 39", 1),          // the last one
            ("Answer: 39\nAnswer:", 1),            // an empty last marker is skipped
            ("12 + 34 = 46\n46 - 7 = 39", 0),       // no marker, required
            ("Answer: 38", 0),
            ("Answer: 39 shells", 0),               // not an integer
            ("Answer:39Answer:", 1),
        ]
        let scores = try reward.score(cases.map { RewardSample(prompt: "p", completion: $0.0, reference: "39") })
        #expect(scores.map(\.reward) == cases.map(\.1))
        #expect {
            _ = try library.instantiate(config: #"{"marker": ""}"#)
        } throws: { "\($0)".contains("config key 'marker': expected a string of 1 to 15 bytes") }
    }

    /// "verify": "process": 1 only for the whole worked solution of a chain
    /// prompt, every step right and nothing after the answer; NaN when the
    /// prompt is no chain.
    @Test func processVerifiedReward() throws {
        let library = try PluginLibrary.load(TestSupport.plugin("PrismExactAnswer"))
        let reward = try library.instantiate(config: #"{"verify": "process"}"#).rewardFunction()
        let finalOnly = try library.instantiate().rewardFunction()
        let cases: [(String, String, Double)] = [
            ("12+34=46;46+7=53;#53", "53", 1),
            (" 12+34=46;46+7=53;#53\n", "53", 1),        // surrounding whitespace
            ("12+34=46;46+7=52;#53", "53", 0),            // right answer after a wrong step
            ("39+63=92;9;+92=185;#53", "53", 0),          // debris before the answer
            ("12+34=46;46+7=53;#53;1;#53", "53", 0),      // debris after the answer
            ("12+34=46;46+7=53;#53", "54", 0),            // the reference disagrees
            ("5-7=-2;-2*3=-6;#-6", "-6", 1),              // left to right, negatives
        ]
        let prompts = ["12+34+7=", "12+34+7=", "12+34+7=", "12+34+7=", "12+34+7=", "12+34+7=", "5-7*3="]
        let samples = zip(prompts, cases).map { RewardSample(prompt: $0, completion: $1.0, reference: $1.1) }
        let scores = try reward.score(samples)
        #expect(scores.map(\.reward) == cases.map(\.2))
        #expect(scores.map(\.correct) == cases.map { $0.2 == 1 })
        // The final-answer reward takes the shortcuts the process check refuses.
        #expect(try finalOnly.score(samples).map(\.reward) == [1, 1, 1, 1, 1, 0, 1])
        let notAChain = try reward.score([RewardSample(prompt: "capital of France?", completion: "#Paris", reference: "Paris")])
        #expect(notAChain[0].reward.isNaN && !notAChain[0].correct)
    }

    @Test func configChangesMarkerAndRewards() throws {
        let library = try PluginLibrary.load(TestSupport.plugin("PrismExactAnswer"))
        let reward = try library.instantiate(
            config: #"{"marker": "=", "require_marker": true, "correct_reward": 2, "incorrect_reward": -1}"#
        ).rewardFunction()
        let scores = try reward.score([
            RewardSample(prompt: "", completion: "x=5", reference: "5"),
            RewardSample(prompt: "", completion: "5", reference: "5"),  // marker required
        ])
        #expect(scores == [RewardScore(reward: 2, correct: true), RewardScore(reward: -1, correct: false)])
    }

    @Test(arguments: [(String, String)]([
        ("{\"marker\": \"The answer is:\u{20}\u{20}\u{20}\"}", "config key 'marker': expected a string of 1 to 15 bytes, got \"The answer is:   \""),
        ("{\"markr\": \"#\"}", "config: unknown key 'markr' (expected verify, marker, require_marker, correct_reward, incorrect_reward)"),
        (#"{"correct_reward": "high"}"#, "config key 'correct_reward': expected a finite number"),
        (#"{"verify": "steps"}"#, #"config key 'verify': expected "final_answer" or "process", got "steps""#),
        ("[1]", "config: expected a JSON object at byte 0"),
    ]))
    func badConfigIsRefusedWithTheKey(config: String, message: String) throws {
        let library = try PluginLibrary.load(TestSupport.plugin("PrismExactAnswer"))
        #expect {
            _ = try library.instantiate(config: config)
        } throws: { error in
            (error as? PluginError)?.reason == "create failed with status 2 (config error): \(message)"
        }
    }
}
