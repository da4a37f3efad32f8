import Foundation
import PrismCore
import PrismHost
import PrismRuntime
import PrismTestSupport
import PrismTrainer
import Testing

/// The plugins a config names, loaded from the build as the CLI loads them.
func loadComponents(_ config: ConfigFile) throws -> Components {
    try ComponentLoader.components(config)
}

/// The stylized-model study: the stylized plugin's semantics, the theory
/// check (simulation against the exact expected update) and the qualitative
/// result, all through the real plugins via dlopen.
@Suite("Stylized study")
struct StudyTests {
    static func library() throws -> PluginLibrary { try PluginLibrary.load(TestSupport.plugin("PrismStylized")) }

    static func load(_ config: ConfigFile) throws -> Components { try loadComponents(config) }

    /// The policy's logits, read back from a checkpoint (exact doubles).
    static func logits(_ backend: any ComputeBackend) throws -> [Double] {
        let path = try TestSupport.temporaryDirectory("stylized").appendingPathComponent("model.json").path
        try backend.save(to: path)
        let object = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
        return try #require(object?["theta"] as? [Double])
    }

    static func sigmoid(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }

    @Test func theModelIsTheChainOfStepsItDescribes() throws {
        let backend = try Self.library().instantiate(config: #"{"steps": 2, "init": [0.5, -1]}"#).computeBackend()
        let info = try backend.info()
        #expect(info.vocabSize == 4 && info.eosToken == 3 && info.bosToken == nil)
        #expect(try backend.tokenize("?10") == [2, 1, 0])
        #expect(try backend.detokenize([2, 1, 1, 3]) == "?11")
        #expect(throws: PluginError.self) { try backend.tokenize("?2") }

        // Next-token distribution: step 0, then step 1, then EOS after a failure or after n successes.
        func p(_ logits: ArraySlice<Float>) -> [Double] {
            let m = logits.max()!
            let e = logits.map { Foundation.exp(Double($0 - m)) }
            return e.map { $0 / e.reduce(0, +) }
        }
        let first = try backend.beginDecoding(TokenBatch(sequences: [[2], [2, 1], [2, 0], [2, 1, 1]], pad: 3))
        #expect(abs(p(first[0..<4])[1] - Self.sigmoid(0.5)) < 1e-6)
        #expect(abs(p(first[4..<8])[1] - Self.sigmoid(-1)) < 1e-6)
        #expect(p(first[8..<12])[3] == 1 && p(first[12..<16])[3] == 1)
        let next = try backend.decodeStep([1, 0, 3, 3])
        #expect(abs(p(next[0..<4])[1] - Self.sigmoid(-1)) < 1e-6)
        #expect(p(next[4..<8])[3] == 1)

        // Log-probs of whole responses: P("11") = s(0.5) s(-1), P("10") = s(0.5)(1 - s(-1)), P("0") = 1 - s(0.5).
        let responses = TokenBatch(sequences: [[2, 1, 1, 3], [2, 1, 0, 3], [2, 0, 3]], pad: 3)
        let logprobs = try backend.logprobs(responses, model: .policy, temperature: 1)
        let total = (0..<3).map { r in (0..<responses.stride).reduce(0.0) { $0 + Double(logprobs[r * responses.stride + $1]) } }
        let expected = [Self.sigmoid(0.5) * Self.sigmoid(-1), Self.sigmoid(0.5) * (1 - Self.sigmoid(-1)), 1 - Self.sigmoid(0.5)]
        for r in 0..<3 { #expect(abs(Foundation.exp(total[r]) - expected[r]) < 1e-6, "row \(r)") }
    }

    @Test func gradientsSGDAndCheckpointsAreExact() throws {
        let library = try Self.library()
        let backend = try library.instantiate(config: #"{"steps": 2, "init": [0.5, -1]}"#).computeBackend()
        // d/dtheta of sum grad * logprob for "?10" with grad 1 on both tokens:
        // d log s(t0)/dt0 = 1 - s(t0); d log(1 - s(t1))/dt1 = -s(t1). SGD with lr h moves theta by -h * gradient.
        let batch = TokenBatch(sequences: [[2, 1, 0, 3]], pad: 3)
        try backend.backward(batch, temperature: 1, gradLogprobs: [0, 1, 1, 1])
        let norm = try backend.optimizerStep(OptimizerStep(learningRate: 0.1))
        let g = [1 - Self.sigmoid(0.5), -Self.sigmoid(-1)]
        #expect(abs(norm - (g[0] * g[0] + g[1] * g[1]).squareRoot()) < 1e-12)
        let theta = try Self.logits(backend)
        #expect(abs(theta[0] - (0.5 - 0.1 * g[0])) < 1e-12 && abs(theta[1] - (-1 - 0.1 * g[1])) < 1e-12)

        // Temperature divides the logit: d log s(t/T)/dt = (1 - s(t/T)) / T.
        let warm = try library.instantiate(config: #"{"steps": 1, "init": 0.8}"#).computeBackend()
        try warm.backward(TokenBatch(sequences: [[2, 1, 3]], pad: 3), temperature: 2, gradLogprobs: [0, 1, 0])
        _ = try warm.optimizerStep(OptimizerStep(learningRate: 1))
        #expect(abs(try Self.logits(warm)[0] - (0.8 - (1 - Self.sigmoid(0.4)) / 2)) < 1e-12)

        // Save/load round-trips exactly; a wrong-size checkpoint is refused and changes nothing.
        let directory = try TestSupport.temporaryDirectory("stylized-ckpt")
        try backend.save(to: directory.appendingPathComponent("a.json").path)
        let other = try library.instantiate(config: #"{"steps": 2}"#).computeBackend()
        try other.load(from: directory.appendingPathComponent("a.json").path)
        #expect(try Self.logits(other) == theta)
        try warm.save(to: directory.appendingPathComponent("one-step.json").path)
        #expect(throws: PluginError.self) { try other.load(from: directory.appendingPathComponent("one-step.json").path) }
        #expect(try Self.logits(other) == theta)
    }

    @Test func rewardAndJudgeFollowTheFirstFailedStep() throws {
        let library = try Self.library()
        let reward = try library.instantiate(config: #"{"steps": 3}"#).rewardFunction()
        let scores = try reward.score(["111", " 111\n", "110", "0", ""].map {
            RewardSample(prompt: "?", completion: $0, reference: "111")
        })
        #expect(scores.map(\.reward) == [1, 1, 0, 0, 0])
        #expect(scores.map(\.correct) == [true, true, false, false, false])

        let group = FeedbackGroup(prompt: "?", reference: "111", completions: ["110", "0", "10", "111"],
                                  rewards: [0, 0, 0, 1], correct: [false, false, false, true])
        let exact = try library.instantiate(config: #"{"steps": 3}"#).feedbackGenerator().assess(group)
        #expect(exact.firstErrors == [2, 0, 1, nil])
        #expect(exact.scores == [2.0 / 3, 0, 1.0 / 3, 1])

        // noise = 1: every wrong answer gets some other index (still a valid one); two steps: the other one.
        let noisy = try library.instantiate(config: #"{"steps": 3, "noise": 1, "seed": 7}"#).feedbackGenerator()
        for _ in 0..<50 {
            let answer = try noisy.assess(group)
            for i in 0..<3 {
                let index = try #require(answer.firstErrors[i])
                #expect(index != exact.firstErrors[i] && (0..<3).contains(index))
                #expect(answer.scores[i] == Double(index) / 3)
            }
            #expect(answer.firstErrors[3] == nil)
        }
        let flip = try library.instantiate(config: #"{"steps": 2, "noise": 1}"#).feedbackGenerator().assess(
            FeedbackGroup(prompt: "?", reference: "11", completions: ["10", "0"], rewards: [0, 0], correct: [false, false]))
        #expect(flip.firstErrors == [0, 1])

        #expect(throws: PluginError.self) { try library.instantiate(config: #"{"steps": 2, "init": [1, 2, 3]}"#) }
        #expect(throws: PluginError.self) { try library.instantiate(config: #"{"noise": 2}"#) }
    }

    /// Theory check: the mean one-step update of the real loop matches the
    /// exact expected update (enumeration over group outcomes) for GRPO and
    /// SGPO, within Monte-Carlo error.
    @Test(arguments: [[-2.5, -2.5], [-0.5, -1.0]])
    func simulatedUpdatesMatchTheExactExpectation(theta: [Double]) throws {
        var settings = Simulation.Settings()
        settings.initialLogits = theta
        settings.groups = 256
        settings.learningRates = [0.01]
        let simulation = Simulation(settings: settings, load: Self.load)
        var exact: [String: [Double]] = [:]
        let rules: [(String, StylizedTheory.Rule)] = [
            ("grpo", .grpo), ("sgpo", .sgpo(.sigmoid())),
            ("sgpo-prefix", .sgpo(.sigmoid(), credit: .prefix)), ("sgpo-split", .sgpo(.sigmoid(), credit: .split)),
        ]
        for (name, rule) in rules {
            exact[name] = StylizedTheory.expectedUpdate(logits: theta, groupSize: 8, rule: rule)
            let variant = try #require(simulation.variants.first { $0.label == name })
            var samples: [[Double]] = []
            for seed in 0..<24 {
                let config = try simulation.config(variant, seed: seed)
                let components = try Self.load(config)
                let policy = try Policy(backend: components.backend, sampler: components.sampler, temperature: 1)
                let step = GRPOStep(policy: policy, reward: components.reward, judge: components.judge,
                                    settings: try config.grpoSettings())
                var rng = RandomState(seed: UInt64(seed))
                let problem = simulation.problem
                _ = try step.run(step: 1, next: { problem }, rng: &rng)
                samples.append(zip(try Self.logits(components.backend), theta).map { ($0 - $1) / 0.01 })
            }
            for k in 0..<2 {
                let values = samples.map { $0[k] }
                let mean = values.reduce(0, +) / Double(values.count)
                let sd = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)).squareRoot()
                let error = sd / Double(values.count).squareRoot()
                #expect(abs(mean - exact[name]![k]) <= 4 * error + 1e-6,
                        "\(name) theta_\(k): simulated \(mean) ± \(error), exact \(exact[name]![k])")
            }
        }
        // What the theory says at the paper's start: SGPO pushes step 1 far harder than GRPO does
        // (and step 2 less: it rewards failing at step 2 over failing at step 1).
        // With two steps the rules only move where step 2 is credited: an answer that failed at step 2
        // (the better one, A > 0) no longer has its failed token pushed down under prefix or split, so
        // step 2 gets GRPO's push; split keeps the push-up of step 1 by the answers that failed there
        // (A < 0 on their failed token), prefix drops it.
        #expect(abs(exact["sgpo-prefix"]![1] - exact["grpo"]![1]) < 1e-12)
        #expect(abs(exact["sgpo-split"]![1] - exact["grpo"]![1]) < 1e-12)
        #expect(abs(exact["sgpo-split"]![0] - exact["sgpo"]![0]) < 1e-12)
        #expect(exact["sgpo-prefix"]![0] < exact["sgpo"]![0] && exact["sgpo-prefix"]![0] > exact["grpo"]![0])
        if theta == [-2.5, -2.5] {
            #expect(exact["sgpo"]![0] > 5 * exact["grpo"]![0])
            #expect(exact["sgpo"]![1] < exact["grpo"]![1])
        }
    }

    /// The qualitative result at paper-like settings (G = 8, 64 groups, lr 0.5,
    /// theta0 = -2.5): SGPO reaches P(correct) > 0.5 in fewer steps than GRPO,
    /// and with judge noise eps = 0.5 most of that advantage is gone.
    @Test func sgpoLearnsFasterAndJudgeNoiseErodesIt() throws {
        var settings = Simulation.Settings()
        settings.strategies = try StudyStrategy.parse("grpo,sgpo")
        settings.noises = [0, 0.5]
        settings.seeds = 3
        settings.steps = 100
        let summary = SimulationSummary(runs: try Simulation(settings: settings, load: Self.load).runAll(), thresholds: [0.5])
        #expect(summary.labels == ["grpo", "sgpo eps=0", "sgpo eps=0.5"])
        func steps(_ label: String) -> Double {
            let runs = summary.runs.filter { $0.label == label }
            return runs.map { Double($0.steps(toReach: 0.5) ?? settings.steps + 1) }.reduce(0, +) / Double(runs.count)
        }
        let grpo = steps("grpo"), sgpo = steps("sgpo eps=0"), noisy = steps("sgpo eps=0.5")
        #expect(sgpo < grpo - 20, "sgpo \(sgpo) vs grpo \(grpo) steps")
        #expect(grpo - noisy < (grpo - sgpo) / 2, "noisy sgpo \(noisy), sgpo \(sgpo), grpo \(grpo)")
        // The all-negative share falls faster under SGPO.
        let negative = { (label: String) in Interval(summary.runs.filter { $0.label == label }.map { $0.allNegative[29] }).mean }
        #expect(negative("sgpo eps=0") < negative("grpo"))
    }

    @Test func theStudysStrategiesComeFromTheRegistry() {
        #expect(StudyStrategy.names == ["grpo", "sgpo", "sgpo-raw", "sgpo-linear", "sgpo-prefix", "sgpo-split", "dapo-filter",
                                        "nsr", "ngrpo", "rloo", "dr-grpo"])
        #expect(StudyStrategy.all.filter(\.usesJudge).map(\.name) == ["sgpo", "sgpo-raw", "sgpo-linear", "sgpo-prefix", "sgpo-split"])
    }
}

/// The transformer study's bookkeeping on hand-written metrics: budget-grid
/// interpolation, completeness, tables and files.
@Suite("Study summary")
struct StudySummaryTests {
    func run(_ root: URL, _ name: String, _ lines: [String]) throws -> RunDirectory {
        let directory = RunDirectory(path: root.appendingPathComponent(name).path)
        try directory.create()
        try (lines.joined(separator: "\n") + "\n").write(toFile: directory.metricsPath, atomically: true, encoding: .utf8)
        return directory
    }

    func step(_ n: Int, spent: Double, allNegative: Double, eval: Double? = nil) -> String {
        let evaluation = eval.map { #", "eval/accuracy": \#($0), "eval/process_accuracy": \#($0 / 2), "eval/rts": 0.5"# } ?? ""
        return #"{"step": \#(n), "budget/spent": \#(spent), "sampling/groups": 4, "sampling/all_negative": \#(allNegative * 4), "groups/total": 4, "groups/zero_advantage": 2\#(evaluation)}"#
    }

    @Test func curvesTablesAndFiles() throws {
        let root = try TestSupport.temporaryDirectory("study-summary")
        let start = #"{"step": 0, "budget/spent": 0, "eval/accuracy": 0.1, "eval/rts": 0.2}"#
        let a0 = try run(root, "a0", [start, step(1, spent: 400, allNegative: 1), step(2, spent: 1000, allNegative: 0.5, eval: 0.3)])
        let a1 = try run(root, "a1", [start, step(1, spent: 500, allNegative: 0.75), step(2, spent: 1100, allNegative: 0.25, eval: 0.5)])
        let b0 = try run(root, "b0", [start, step(1, spent: 1200, allNegative: 1, eval: 0.1)])
        let partial = try run(root, "partial", [start, step(1, spent: 400, allNegative: 1)])
        #expect(TransformerStudySummary.isComplete(a0, budget: 1000) && TransformerStudySummary.isComplete(b0, budget: 1000))
        #expect(!TransformerStudySummary.isComplete(partial, budget: 1000))
        #expect(!TransformerStudySummary.isComplete(a0, budget: 2000))

        let runs = [
            try TransformerStudySummary.Run(label: "a", noise: 0, seed: 0, directory: a0),
            try TransformerStudySummary.Run(label: "a", noise: 0, seed: 1, directory: a1),
            try TransformerStudySummary.Run(label: "sgpo eps=0.5", noise: 0.5, seed: 0, directory: b0),
        ]
        // Linear between evaluations: 0.1 at 0, 0.3 at 1000 -> 0.2 at 500; after the last one, the last value.
        #expect(abs(runs[0].accuracy(at: 500) - 0.2) < 1e-12)
        #expect(runs[0].accuracy(at: 5000) == 0.3 && runs[0].accuracy(at: 0) == 0.1)
        let summary = TransformerStudySummary(runs: runs, budget: 1000, noiseStrategy: "sgpo")
        #expect(summary.grid == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000])
        let curve = summary.accuracyChart(labels: ["a"]).series[0].points
        #expect(abs(curve.last!.mean - (0.3 + (0.1 + 0.4 * 1000 / 1100)) / 2) < 1e-12)  // seed 1 is at 1000 of 1100
        // The all-negative share averages the steps inside each tenth of the budget.
        let negative = summary.allNegativeChart(labels: ["a"]).series[0].points
        // (300, 400]: only seed 0's 1; (400, 500]: only seed 1's 0.75; the last tenth includes the overshoot.
        #expect(negative[3].mean == 1 && negative[4].mean == 0.75 && negative[9].mean == 0.375)
        #expect(summary.table.contains("| a | 0.400 ± "))
        #expect(summary.table.contains("| 0.5 | 0.100 | 0.050 | 0.500 | 0.50 |"))
        #expect(summary.table.contains("| a | 0.400 ± 1.271 | 0.200 ± 0.635 | 0.500 ± 0.000 |"), "\(summary.table)")
        #expect(throws: TrainerError.self) {
            try TransformerStudySummary.Run(label: "x", noise: 0, seed: 0,
                                            directory: try run(root, "empty", [step(1, spent: 10, allNegative: 1)]))
        }
        // One line per evaluation, the label quoted (ablation labels hold commas).
        let csv = summary.evaluationsCSV.split(separator: "\n")
        #expect(csv.count == 1 + 2 + 2 + 2 && csv[1] == "\"a\",0,0.0,0,0.1,nan,0.2")
        try summary.write(to: root.path)
        for file in ["summary.md", "evaluations.csv", "accuracy.svg", "all_negative.svg", "noise.svg"] {
            #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent(file).path), "\(file)")
        }
    }
}

/// The transformer study end to end at a toy size: warm start, runs on a
/// matched budget, stop and continue, summary files.
@Suite("Transformer study")
struct TransformerStudyTests {
    static func load(_ config: ConfigFile) throws -> Components { try loadComponents(config) }

    @Test func runsStopContinueAndSummarise() throws {
        var settings = TransformerStudy.Settings()
        settings.directory = try TestSupport.temporaryDirectory("transformer-study").path
        settings.strategies = try StudyStrategy.parse("grpo,sgpo")
        settings.noises = [0, 0.5]
        settings.seeds = 1
        settings.terms = 3
        settings.tokenBudget = 2000
        settings.evalEvery = 2
        settings.evalProblems = 4
        settings.sftSteps = 2
        settings.focus = "sgpo"
        settings.noiseSeeds = 1
        settings.ablationSeeds = 0
        settings.strongSeeds = 0
        var study = TransformerStudy(settings: settings, progress: .silent, load: Self.load)
        #expect(study.variants.map(\.label) == ["grpo", "sgpo", "sgpo judge-free", "sgpo eps=0.5"])
        let noisy = try study.config(base: ConfigFile(), variant: study.variants[3], seed: 0)
        #expect(noisy.pluginConfig("judge.config").contains("0.5"))
        let free = try study.config(base: ConfigFile(), variant: study.variants[2], seed: 0)
        #expect(free.double("run.judge_token_cost") == 0)

        // Ctrl-C in the first run: the study stops; the next call continues and finishes.
        var asked = 0
        study.shouldStop = { asked += 1; return asked == 1 }
        #expect(try study.run() == false)
        study.shouldStop = { false }
        #expect(try study.run() == true)
        for variant in study.variants {
            #expect(TransformerStudySummary.isComplete(study.runDirectory(variant, seed: 0), budget: 2000), "\(variant.label)")
        }
        // The study's transformer computes every sequence whole, as when its
        // recorded tables were measured (Decisions #59).
        let recorded = try String(contentsOfFile: study.runDirectory(study.variants[0], seed: 0).configPath, encoding: .utf8)
        #expect(recorded.contains(#""share_prefixes":false"#), "\(recorded)")
        // Everything done: another call runs nothing.
        let before = try String(contentsOfFile: study.runDirectory(study.variants[0], seed: 0).metricsPath, encoding: .utf8)
        #expect(try study.run() == true)
        #expect(try String(contentsOfFile: study.runDirectory(study.variants[0], seed: 0).metricsPath, encoding: .utf8) == before)

        let summary = try study.summary()
        #expect(summary.labels == study.variants.map(\.label))
        // Every run starts from the same warm start, scored by the same clean judge
        // (the noisy runs' judge does not score evaluations): the same step-0 numbers.
        #expect(Set(summary.runs.map { $0.evaluations[0].accuracy }).count == 1)
        #expect(Set(summary.runs.map { $0.evaluations[0].rts }).count == 1)
        #expect(summary.runs.allSatisfy { $0.evaluations.last!.spent >= 2000 })
        try summary.write(to: settings.directory)
        #expect(FileManager.default.fileExists(atPath: settings.directory + "/accuracy.svg"))
        #expect(summary.table.contains("| sgpo judge-free |") && summary.table.contains("| 0.5 |"))
    }
}
