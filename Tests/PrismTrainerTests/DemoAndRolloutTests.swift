import Foundation
import PrismCore
import PrismRuntime
import PrismTestSupport
import PrismTrainer
import Testing

/// What the CLI used to do itself: the demo, rollouts and the study's design.
@Suite("Demo, rollout and study design")
struct DemoAndRolloutTests {
    @Test func theDemoComparesGRPOAndSGPOFromOneWarmStart() throws {
        var settings = Demo.Settings()
        settings.directory = try TestSupport.temporaryDirectory("demo").path
        settings.sftSteps = 2
        settings.steps = 2
        settings.evalProblems = 4
        let result = try Demo(settings: settings, progress: .silent) { try ComponentLoader.components($0) }.run()
        #expect(result.rows.map(\.strategy) == ["grpo", "sgpo"])
        #expect(result.rows.allSatisfy { $0.evaluation?.problems == 4 })
        // Both runs start from the warm start the demo saved.
        for name in ["grpo", "sgpo"] {
            let config = try ConfigFile(path: "\(settings.directory)/\(name)/config.yaml")
            #expect(config.string("model.checkpoint") == settings.directory + "/warm-start.safetensors")
            #expect(config.string("strategy.name") == name)
        }
        #expect(result.rows[1].diversified > 0 && result.rows[0].diversified == 0)
        let lines = result.table.split(separator: "\n")
        #expect(lines[1].hasPrefix("start ") && lines[2].hasPrefix("grpo ") && lines[3].hasPrefix("sgpo "))
        #expect(FileManager.default.fileExists(atPath: settings.directory + "/report.html"))
        #expect(FileManager.default.fileExists(atPath: settings.directory + "/sft.jsonl"))
    }

    @Test func rolloutScoresEveryCompletionWithTheRewardPlugin() throws {
        let dir = try TestSupport.temporaryDirectory("rollout")
        try JSONL.write(ArithmeticTask(terms: 2...2, digits: 1...1).examples(count: 5, seed: 1), to: dir.path + "/train.jsonl")
        var config = ConfigFile()
        for assignment in [
            "data.train=\(dir.path)/train.jsonl", "grpo.group_size=3", "grpo.max_new_tokens=6",
            #"model.config={"vocab": "0123456789+=;#", "d_model": 16, "layers": 1, "heads": 2, "d_ff": 32, "max_len": 32}"#,
        ] { try config.set(assignment) }
        let components = try ComponentLoader.components(config)
        let groups = try Rollout.generate(config: config, components: components, prompts: 7)
        #expect(groups.count == 7 && groups.allSatisfy { $0.completions.count == 3 })
        #expect(groups[5].example == groups[0].example)  // 5 problems, repeated in order
        for group in groups {
            let scores = try components.reward.score(group.completions.map {
                RewardSample(prompt: group.example.prompt, completion: $0, reference: group.example.answer)
            })
            #expect(group.correct == scores.map(\.correct))
        }
        // The same seed, the same groups.
        #expect(try Rollout.generate(config: config, components: ComponentLoader.components(config), prompts: 7) == groups)
    }

    @Test func theStylizedStudyHasItsSixExperiments() throws {
        let experiments = try StylizedStudy.experiments(seeds: 3, noises: [0, 0.5])
        #expect(experiments.map(\.name) == ["strategies", "learning-rates", "noise", "first-step-hard", "last-step-hard", "maps"])
        #expect(experiments.allSatisfy { $0.settings.seeds == 3 })
        #expect(experiments[2].settings.noises == [0, 0.5])
        #expect(experiments[5].settings.reasoningSteps == 4)
    }
}
