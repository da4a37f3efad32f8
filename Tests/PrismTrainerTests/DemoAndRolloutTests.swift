import Foundation
import PrismCore
import PrismRuntime
import PrismTestSupport
import PrismTrainer
import Testing

/// What the CLI used to do itself: the demo, rollouts and the study's design.
@Suite("Demo, rollout and study design")
struct DemoAndRolloutTests {
    @Test func theDemoComparesGRPOAndSGPOCreditRulesFromOneWarmStart() throws {
        var settings = Demo.Settings()
        settings.directory = try TestSupport.temporaryDirectory("demo").path
        settings.sftSteps = 2
        settings.steps = 2
        settings.evalProblems = 4
        let result = try Demo(settings: settings, progress: .silent) { try ComponentLoader.components($0) }.run()
        #expect(result.rows.map(\.strategy) == ["grpo", "sgpo", "sgpo-prefix"])
        #expect(result.rows.allSatisfy { $0.evaluation?.problems == 4 && !($0.evaluation?.processAccuracy.isNaN ?? true) })
        // Every run starts from the warm start the demo saved, with its strategy's settings.
        for (name, credit) in [("grpo", nil), ("sgpo", "sequence"), ("sgpo-prefix", "prefix")] {
            let config = try ConfigFile(path: "\(settings.directory)/\(name)/config.yaml")
            #expect(config.string("model.checkpoint") == settings.directory + "/warm-start.safetensors")
            #expect(config.string("strategy.name") == (name == "grpo" ? "grpo" : "sgpo"))
            if let credit { #expect(config.string("strategy.credit") == credit) }
        }
        #expect(result.rows[1].diversified > 0 && result.rows[2].diversified > 0 && result.rows[0].diversified == 0)
        let lines = result.table.split(separator: "\n")
        #expect(lines[1].hasPrefix("start ") && lines[2].hasPrefix("grpo ") && lines[3].hasPrefix("sgpo ")
            && lines[4].hasPrefix("sgpo-prefix "))
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

    @Test func theStylizedStudyHasItsSevenExperiments() throws {
        let experiments = try StylizedStudy.experiments(seeds: 3, noises: [0, 0.5])
        #expect(experiments.map(\.name)
            == ["strategies", "learning-rates", "noise", "first-step-hard", "last-step-hard", "maps", "credit"])
        #expect(experiments.allSatisfy { $0.settings.seeds == 3 })
        #expect(experiments[2].settings.noises == [0, 0.5])
        #expect(experiments[5].settings.reasoningSteps == 4 && experiments[6].settings.reasoningSteps == 4)
        #expect(experiments[6].settings.strategies.map(\.name) == ["grpo", "sgpo", "sgpo-prefix", "sgpo-split"])
    }

    /// The transformer study's plan: its sections, seeds and run configs,
    /// without running anything.
    @Test func theTransformerStudysPlan() throws {
        var settings = TransformerStudy.Settings()
        settings.directory = "/nonexistent/study"
        let study = TransformerStudy(settings: settings, progress: .silent) { _ in throw TrainerError("not loaded") }
        let variants = study.variants
        let main = variants.filter { $0.section == .main }
        #expect(main.map(\.label) == ["grpo", "dapo-filter", "sgpo", "sgpo-prefix", "sgpo-split", "sgpo-prefix judge-free"])
        #expect(main.allSatisfy { $0.seeds == 5 && $0.budget == 600_000 && $0.sftSteps == 1000 })
        #expect(variants.filter { $0.section == .noise }.map(\.noise) == [0.1, 0.3, 0.5])
        let ablation = variants.filter { $0.section == .ablation }
        // GRPO is rerun only where the change can affect it (not for judge settings).
        #expect(ablation.filter { $0.strategy.name == "grpo" }.count == 5 && ablation.filter { $0.strategy.name == "sgpo" }.count == 7)
        #expect(ablation.filter(\.tied).map(\.change) == ["LM head tied to the embedding", "LM head tied to the embedding"])
        #expect(ablation.first { $0.change == "1300 warm-start steps" }?.sftSteps == 1300)
        #expect(variants.filter { $0.section == .strong }.map(\.label)
            == ["grpo, strong warm start", "sgpo, strong warm start", "sgpo-prefix, strong warm start"])
        // Every run has a directory of its own.
        let directories = study.jobs.map { study.runDirectory($0.variant, seed: $0.seed).path }
        #expect(Set(directories).count == directories.count && directories.count == 78)
        // The lenient-judge row's judge config, and the process-reward row's reward.
        var base = ConfigFile()
        try base.set("seed=0")
        let lenient = try #require(ablation.first { $0.change.hasPrefix("lenient") })
        func object(_ config: ConfigFile, _ key: String) throws -> NSDictionary {
            let text = try #require(config.pluginConfigs[key], "\(key) not set")
            return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary)
        }
        let judge = try object(try study.config(base: base, variant: lenient, seed: 2), "judge.config")
        #expect(judge == ["noise": 0, "seed": 2, "after_answer": "ignore"] as NSDictionary)
        let process = try #require(ablation.first { $0.change == "process-verified reward" && $0.strategy.name == "grpo" })
        #expect(try object(try study.config(base: base, variant: process, seed: 0), "reward.config") == ["verify": "process"] as NSDictionary)
    }
}
