import Foundation
import PrismCore
import PrismDigest
import PrismHost
import PrismRuntime
import PrismTestSupport
@testable import PrismTrainer
import Testing

/// Short end-to-end runs through the real plugins: run directory, metrics,
/// checkpoints, resume, interruption, offline training, configs.
@Suite("Training runs")
struct RunTests {
    let directory: URL
    let config: ConfigFile

    init() throws {
        directory = try TestSupport.temporaryDirectory("runs")
        let task = ArithmeticTask(terms: 2...3, digits: 1...1)
        try JSONL.write(task.examples(count: 100, seed: 1), to: directory.appendingPathComponent("train.jsonl").path)
        try JSONL.write(task.examples(count: 8, seed: 2), to: directory.appendingPathComponent("eval.jsonl").path)
        var config = ConfigFile()
        for assignment in [
            "data.train=\(directory.path)/train.jsonl", "data.eval=\(directory.path)/eval.jsonl",
            "run.steps=3", "run.checkpoint_every=2", "run.eval_every=3", "grpo.group_size=4",
            "grpo.prompts_per_step=4", "grpo.max_new_tokens=16", "eval.max_new_tokens=16", "eval.k=2",
            "strategy.name=sgpo", "sft.steps=5", "sft.batch_size=8", "run.log_samples=6",
            #"model.config={"vocab": "0123456789+=;#", "d_model": 32, "layers": 1, "heads": 2, "d_ff": 64, "max_len": 48}"#,
        ] { try config.set(assignment) }
        self.config = config
    }

    static func components(_ config: ConfigFile) throws -> Components {
        try ComponentLoader.components(config)
    }

    func trainer(_ config: ConfigFile, _ name: String) throws -> Trainer {
        Trainer(config: config, directory: RunDirectory(path: directory.appendingPathComponent(name).path),
                components: try Self.components(config), progress: .silent)
    }

    static func metrics(_ run: RunDirectory) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: run.metricsPath, encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    /// A token budget ends the run after the step that spends it (generated
    /// tokens plus the judge's reading), with a final evaluation; the budget
    /// carries over a resume; eval_at_start writes a step-0 line.
    @Test func tokenBudgetEndsTheRunAndCountsTheJudge() throws {
        var config = self.config
        for assignment in ["run.steps=40", "run.token_budget=600", "run.judge_token_cost=2", "run.eval_every=0",
                           "run.eval_at_start=true", "run.checkpoint_every=1", "sft.steps=0"] {
            try config.set(assignment)
        }
        let trainer = try trainer(config, "budget")
        let summary = try trainer.run(resume: false)
        #expect(!summary.interrupted && summary.lastStep < 40 && summary.evaluation != nil)
        let lines = try Self.metrics(trainer.directory)
        #expect(lines.first?["step"] as? Int == 0 && lines.first?["eval/accuracy"] != nil)
        var spent = 0.0
        for line in lines.dropFirst() {
            spent += (line["tokens/generated"] as! Double) + 2 * (line["feedback/judged_tokens"] as! Double)
            #expect(abs((line["budget/spent"] as! Double) - spent) < 1e-9)
        }
        let spentBefore = try #require(lines.dropLast().last?["budget/spent"] as? Double)
        #expect(spentBefore < 600 && spent >= 600)
        #expect(lines.last?["eval/accuracy"] != nil)
        #expect(lines.dropFirst().contains { ($0["feedback/judged_tokens"] as! Double) > 0 })  // sgpo asked the judge

        // Nothing is left to spend: resuming runs no step.
        var resumed = config
        try resumed.set("run.token_budget=600")
        let again = Trainer(config: resumed, directory: trainer.directory, components: try Self.components(resumed), progress: .silent)
        let second = try again.run(resume: true)
        #expect(second.lastStep == summary.lastStep)
        #expect(try Self.metrics(trainer.directory).count == lines.count)
    }

    @Test func runWritesConsistentMetricsCheckpointsAndReport() throws {
        let trainer = try trainer(config, "run")
        let summary = try trainer.run(resume: false)
        #expect(summary.firstStep == 1 && summary.lastStep == 3 && !summary.interrupted)
        let lines = try Self.metrics(trainer.directory)
        #expect(lines.map { $0["step"] as! Int } == [1, 2, 3])
        for line in lines {
            let total = line["groups/total"] as! Double
            let kinds = ["all_negative", "all_positive", "mixed", "not_applicable"].map { line["groups/\($0)"] as! Double }
            #expect(kinds.reduce(0, +) == total)
            #expect(total + (line["groups/dropped"] as! Double) == 4)
            #expect(line["accuracy"] != nil && line["time/step_s"] != nil && line["tokens_per_s"] != nil)
        }
        let accuracy = try #require(lines[2]["eval/accuracy"] as? Double)
        #expect((0...1).contains(accuracy))
        #expect(summary.evaluation?.problems == 8)
        let fm = FileManager.default
        #expect(fm.fileExists(atPath: trainer.directory.path + "/checkpoints/step-000002/model.safetensors"))
        #expect(try String(contentsOfFile: trainer.directory.path + "/checkpoints/latest", encoding: .utf8) == "step-000003")
        let report = try String(contentsOfFile: trainer.directory.reportPath, encoding: .utf8)
        #expect(report.contains("<svg") && report.contains("share of groups all-negative"))
        // run.log_samples completions a step, with what Training.md promises.
        let samples = try String(contentsOfFile: trainer.directory.samplesPath, encoding: .utf8).split(separator: "\n")
        #expect(samples.count == 3 * 6)
        let first = try JSONSerialization.jsonObject(with: Data(samples[0].utf8)) as! [String: Any]
        #expect(Set(first.keys).isSuperset(of: ["step", "prompt", "completion", "answer", "correct", "advantage"]))
        let resolved = try ConfigFile(path: trainer.directory.configPath)
        #expect(resolved.string("strategy.name") == "sgpo" && resolved.int("grpo.group_size") == 4)
        #expect(resolved.pluginConfig("model.config") == config.pluginConfig("model.config"))
    }

    @Test func interruptedRunResumesFromItsCheckpoint() throws {
        var longer = config
        try longer.set("run.steps=5")
        try longer.set("sft.steps=0")
        let first = try trainer(longer, "resume")
        first.shouldStop = {  // "Ctrl-C" as step 2 ends
            FileManager.default.contents(atPath: first.directory.metricsPath).map { $0.filter { $0 == 10 }.count == 2 } ?? false
        }
        let stopped = try first.run(resume: false)
        #expect(stopped.interrupted && stopped.lastStep == 2)
        #expect(try String(contentsOfFile: first.directory.path + "/checkpoints/latest", encoding: .utf8) == "step-000002")

        let second = try trainer(longer, "resume")
        let resumed = try second.run(resume: true)
        #expect(resumed.firstStep == 3 && resumed.lastStep == 5)
        #expect(try Self.metrics(second.directory).map { $0["step"] as! Int } == [1, 2, 3, 4, 5])
    }

    @Test func offlineRunTrainsFromARolloutFile() throws {
        let components = try Self.components(config)
        let policy = try Policy(backend: components.backend, sampler: components.sampler, temperature: 1)
        var rng = RandomState(seed: 3)
        let examples = try JSONL.read(Example.self, from: config.string("data.train")).prefix(8)
        let generated = try policy.generate(examples.map(\.prompt), count: 4, maxNewTokens: 16, rng: &rng)
        var groups = zip(examples, generated).map { OfflineGroup(example: $0, completions: $1.map(\.text), rewards: nil, correct: nil) }
        groups[0].completions = groups[0].completions.map { _ in groups[0].example.solution }  // a known-good group
        groups[0].rewards = [1, 1, 1, 1]
        groups[0].correct = [true, true, true, true]
        let file = directory.appendingPathComponent("groups.jsonl").path
        try JSONL.write(groups, to: file)

        let trainer = try trainer(config, "offline")
        try trainer.runOffline(file: file)
        let lines = try Self.metrics(trainer.directory)
        #expect(lines.map { $0["step"] as! Int } == [1, 2])
        #expect(lines[0]["groups/all_positive"] as! Double >= 1)
        #expect(FileManager.default.fileExists(atPath: trainer.directory.path + "/checkpoints/step-000002/model.safetensors"))
    }

    @Test func configErrorsNameTheKeyAndTheAcceptedValues() throws {
        #expect { _ = try ConfigFile(yaml: "grpo:\n  group_sise: 4\n", source: "c.yaml") } throws: { error in
            "\(error)".hasPrefix("c.yaml: grpo.group_sise: unknown key; nearest valid names: grpo.group_size")
        }
        #expect { _ = try ConfigFile(yaml: "strategy:\n  name: sgp0\n", source: "c.yaml") } throws: { error in
            "\(error)" == "c.yaml: strategy.name: expected one of grpo, sgpo, dapo-filter, nsr, ngrpo, rloo, dr-grpo, got 'sgp0'"
        }
        var file = ConfigFile()
        #expect { try file.set("grpo.group_size=0") } throws: { error in
            "\(error)" == "--set: grpo.group_size: expected an integer in 1...1024, got '0'"
        }
        try file.set("model.config.d_model=64")
        #expect(file.pluginConfig("model.config") == #"{"d_model":64}"#)
        let yaml = try ConfigFile(yaml: "seed: 3\nmodel:\n  config:\n    layers: 1\nloss:\n  kl_beta: 0.04\n", source: "x")
        #expect(yaml.int("seed") == 3 && yaml.double("loss.kl_beta") == 0.04 && yaml.pluginConfig("model.config") == #"{"layers":1}"#)
        #expect(yaml.policyLoss.klBeta == 0.04)
    }

    /// What the fuzz target checks, on the inputs that once broke it: a
    /// config that loads renders to YAML that loads to the same values.
    @Test func theResolvedConfigReadsBackAsTheSameValues() throws {
        let inputs = [
            #"data: {train: 'a"b\c', eval: "line\nbreak\ttab"}"#,
            "data: {train: '[x', eval: '- y'}\nreward: {plugin: '*z'}\njudge: {plugin: '&a !b |c >d %e @f `g'}",
            "data: {train: ' padded ', eval: \"nel\\x85 ls\\u2028 bom\\ufeff nul\\0\"}",
            #"model: {config: {name: "123", flag: "true", n: 123, text: "\x85\u2028", "k\u0001": null}}"#,
            #"model: {config: '{"d_model": 16, "name": "x"}'}"#,
            "strategy: {name: grpo, beta: 3}",
        ]
        for input in inputs {
            let config = try ConfigFile(yaml: input, source: "in.yaml")
            let again = try ConfigFile(yaml: config.yaml, source: "rendered")
            for key in ConfigKey.all {
                #expect(again.value(key.path) == config.value(key.path), "\(input): \(key.path)")
                #expect(again.pluginConfig(key.path) == config.pluginConfig(key.path), "\(input): \(key.path)")
            }
        }
        // A quoted value in a plugin config is text; JSON object text is a config; other text is not.
        let typed = try ConfigFile(yaml: #"model: {config: {name: "123", n: 123}}"#, source: "in.yaml")
        #expect(typed.pluginConfig("model.config") == #"{"n":123,"name":"123"}"#)
        #expect { _ = try ConfigFile(yaml: #"model: {config: "{a"}"#, source: "in.yaml") } throws: { error in
            "\(error)" == "in.yaml: model.config: expected a mapping or a JSON object, got '{a'"
        }
        // A parameter of another strategy stays in the rendered config, so it still fails there.
        let other = try ConfigFile(yaml: "strategy: {name: grpo, beta: 3}", source: "in.yaml")
        #expect(other.yaml.contains("  beta: 3"))
        #expect(throws: ConfigError.self) { try ConfigFile(yaml: other.yaml, source: "rendered").strategy() }
    }

    @Test func everyBuiltInStrategyResolvesFromTheConfig() throws {
        let expected: [String: Strategy] = [
            "grpo": Strategy(), "sgpo": Strategy(diversification: Diversification()),
            "dapo-filter": Strategy(filter: .uniform), "nsr": Strategy(estimator: .nsr()),
            "ngrpo": Strategy(estimator: .ngrpo()), "rloo": Strategy(estimator: .rloo),
            "dr-grpo": Strategy(estimator: .grpo(scale: .none)),
        ]
        #expect(Set(expected.keys) == Set(StrategyRegistry.builtIn.names))
        for name in StrategyRegistry.builtIn.names {
            var file = ConfigFile()
            try file.set("strategy.name=\(name)")
            #expect(try file.strategy() as? Strategy == expected[name], "\(name)")
        }
        var file = ConfigFile()
        try file.set("strategy.name=sgpo")
        try file.set("strategy.map=linear")
        try file.set("strategy.scale=batch")
        let sgpo = try #require(try file.strategy() as? Strategy)
        #expect(sgpo.diversification?.map == .linear(ceiling: 0.9) && sgpo.estimator == .grpo(scale: .batch))
        // Each strategy's own default; the resolved config shows its parameters only.
        try file.set("strategy.name=dapo-filter")
        try file.set("strategy.map=sigmoid")
        #expect(throws: ConfigError.self) { try file.strategy() }
        var dapo = ConfigFile()
        try dapo.set("strategy.name=dapo-filter")
        #expect(dapo.value("strategy.filter") == "uniform" && ConfigFile().value("strategy.filter") == "none")
        #expect(dapo.yaml.contains("filter: uniform") && !dapo.yaml.contains("  beta:"))
    }

    @Test func aFailingStrategyPluginIsLoggedAndTheRunGoesOn() throws {
        let fixtures = try TestSupport.temporaryDirectory("bad-strategy")
        let failing = try TestSupport.compilePlugin(
            [TestSupport.fixture("failing_strategy.c")], name: "failing", defines: ["FAIL_ADVANTAGES"], in: fixtures)
        var components = try Self.components(config)
        components.strategy = try PluginLibrary.load(failing).instantiate().groupStrategy().strategy
        var short = config
        try short.set("sft.steps=0")
        var lines: [String] = []
        let trainer = Trainer(config: short, directory: RunDirectory(path: directory.appendingPathComponent("strategy").path),
                              components: components, progress: ProgressReporter(live: false) { lines.append($0) })
        #expect(try trainer.run(resume: false).lastStep == 3)
        let metrics = try Self.metrics(trainer.directory)
        #expect(metrics.allSatisfy { ($0["strategy/errors"] as! Double) == 1 && $0["updates"] == nil })
        #expect(lines.contains { $0.hasPrefix("step 1: 1 strategy call(s) failed: ") && $0.contains("advantages failed with status 9 (internal error): failing on purpose") }, "\(lines)")
    }

    @Test func relativePathsInAConfigAreRelativeToItsFolder() throws {
        let dir = try TestSupport.temporaryDirectory("config-paths")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("configs"), withIntermediateDirectories: true)
        let yaml = """
            data: {train: ../data/train.jsonl, eval: ""}
            reward: {plugin: ./plugins/libmine.so}
            judge: {plugin: PrismStepJudge}
            model: {checkpoint: warm.safetensors}
            """
        let file = dir.appendingPathComponent("configs/run.yaml").path
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        var config = try ConfigFile(path: file)
        #expect(config.string("data.train") == dir.path + "/data/train.jsonl")
        #expect(config.string("reward.plugin") == dir.path + "/configs/plugins/libmine.so")
        #expect(config.string("model.checkpoint") == dir.path + "/configs/warm.safetensors")
        #expect(config.string("judge.plugin") == "PrismStepJudge" && config.string("data.eval") == "")
        // On the command line, relative to the working directory.
        try config.set("data.eval=held.jsonl")
        #expect(config.string("data.eval") == FileManager.default.currentDirectoryPath + "/held.jsonl")
    }

    @Test func aParameterTheStrategyLacksIsNamed() throws {
        var file = ConfigFile()
        try file.set("strategy.beta=3")
        #expect {
            try file.strategy()
        } throws: { error in
            "\(error)" == "--set: strategy.beta is not a parameter of strategy 'grpo' (its parameters: scale, filter)"
        }
    }

    @Test func aMisbehavingRewardPluginIsCountedAndTheRunGoesOn() throws {
        let fixtures = try TestSupport.temporaryDirectory("bad-reward")
        let broken = try TestSupport.compilePlugin(
            [TestSupport.fixture("broken_plugin.c")], name: "bad_output", defines: ["BAD_OUTPUT"], in: fixtures)
        var components = try Self.components(config)
        components.reward = try PluginLibrary.load(broken).instantiate().rewardFunction()
        var short = config
        try short.set("sft.steps=0")
        var lines: [String] = []
        let trainer = Trainer(config: short, directory: RunDirectory(path: directory.appendingPathComponent("bad").path),
                              components: components, progress: ProgressReporter(live: false) { lines.append($0) })
        let summary = try trainer.run(resume: false)
        #expect(summary.lastStep == 3)
        let metrics = try Self.metrics(trainer.directory)
        #expect(metrics.allSatisfy { ($0["reward/errors"] as! Double) >= 1 && ($0["groups/dropped"] as! Double) == 4 })
        // An all-NaN batch counts every answer as not applicable (Math.md), dropped groups included.
        let answers = Double(short.int("grpo.group_size") * short.int("grpo.prompts_per_step"))
        #expect(metrics.allSatisfy { ($0["rewards/not_applicable"] as! Double) == answers })
        #expect(lines.contains { $0.contains("reward call(s) failed, their groups dropped: org.prism.test.fixture: score returned reward inf") })
    }
}

/// The checkpoint manifest's digests are SHA-256 as `sha256sum` prints it.
@Suite("SHA-256")
struct SHA256Tests {
    @Test func knownDigests() {
        #expect(SHA256.hex(Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // Two blocks after padding (56 bytes), and a million bytes fed in uneven pieces.
        #expect(SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var hash = SHA256()
        var fed = 0
        var piece = 1
        while fed < 1_000_000 {
            let count = min(piece, 1_000_000 - fed)
            hash.update([UInt8](repeating: UInt8(ascii: "a"), count: count))
            fed += count
            piece = piece * 7 % 1000 + 1
        }
        #expect(hash.finish() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
