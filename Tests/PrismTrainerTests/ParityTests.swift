import Foundation
import PrismCore
import PrismHost
import PrismTestSupport
import PrismTrainer
import Testing

/// Step-level parity: one fixed batch of groups (an all-negative one and a
/// mixed one, with the judge's scores and first-error spans) goes through
/// Prism's real offline GRPO step (strategy, credit rule, clipped token
/// objective, the transformer plugin's backward and AdamW), and through a
/// plain PyTorch reference written apart from it (Tests/Parity/
/// grpo_reference.py) from the same initial weights. Advantages, per-token
/// advantages, log-probs, the objective's gradient, the gradient norm and the
/// update itself must agree, for GRPO and for SGPO with each credit rule.
///
/// Needs torch's CPU build in `.build-python/venv` (`scripts/python-env`,
/// which `scripts/test` runs).
@Suite("Parity with a PyTorch reference")
struct ParityTests {
    static let model = #"{"vocab": "0123456789+-*=;#", "d_model": 32, "layers": 2, "heads": 4, "d_ff": 64, "max_len": 48, "seed": 11}"#
    static let prompt = "12+34+7="
    /// (completions, rewards): the first group all-negative, the second mixed.
    static let groups: [([String], [Double])] = [
        (["12+34=47;47+7=54;#54", "12+34=46;46+7=52;#52", "12+34=46;46+7=53;#53;1", "12+34=46"], [0, 0, 0, 0]),
        (["12+34=46;46+7=53;#53", "12+34=46;46+7=52;#52", "12+35=47;47+7=54;#54", "1+2=3"], [1, 0, 0, 0]),
    ]

    @Test func oneUpdateMatchesPlainPyTorch() throws {
        let python = TestSupport.packageRoot.appendingPathComponent(".build-python/venv/bin/python").path
        try #require(FileManager.default.isExecutableFile(atPath: python),
                     "no PyTorch environment at \(python); run scripts/python-env (scripts/test does)")
        let directory = try TestSupport.temporaryDirectory("parity")
        let transformer = try PluginLibrary.load(TestSupport.plugin("PrismTransformer"))
        let sampler = try PluginLibrary.load(TestSupport.plugin("PrismSampler")).instantiate().sampler()
        let judge = try PluginLibrary.load(TestSupport.plugin("PrismStepJudge")).instantiate().feedbackGenerator()
        let reward = try PluginLibrary.load(TestSupport.plugin("PrismExactAnswer")).instantiate().rewardFunction()
        func policy() throws -> Policy {
            try Policy(backend: try transformer.instantiate(config: Self.model).computeBackend(), sampler: sampler, temperature: 1)
        }
        let initial = directory.appendingPathComponent("initial.safetensors").path
        let first = try policy()
        try first.backend.save(to: initial)

        var optimizer = OptimizerStep(learningRate: 1e-2)
        // A large epsilon makes AdamW's first step proportional to the
        // gradient (lr g / (|g| + 1)) instead of lr sign(g), so the update
        // tests the gradient itself; weight decay and clipping are on.
        optimizer.epsilon = 1
        optimizer.weightDecay = 0.1
        optimizer.maxGradNorm = 0.05

        // The batch as Prism tokenizes it, and the judge's word on it.
        let eos = Int32(try #require(first.info.eosToken))
        let promptTokens = try first.promptTokens(Self.prompt)
        var groupsJSON: [[String: Any]] = []
        var completions: [[Completion]] = []
        var feedback: [Feedback] = []
        for (texts, rewards) in Self.groups {
            let group = try texts.map { Completion(promptTokens: promptTokens, tokens: try first.backend.tokenize($0) + [eos],
                                                   text: $0, finished: true) }
            let answer = try judge.assess(FeedbackGroup(prompt: Self.prompt, reference: "53", completions: texts,
                                                        rewards: rewards, correct: rewards.map { $0 == 1 }))
            completions.append(group)
            feedback.append(answer)
            let prompts: [[Int]] = group.map { $0.promptTokens.map(Int.init) }
            let tokens: [[Int]] = group.map { $0.tokens.map(Int.init) }
            let errors: [Int] = answer.firstErrors.map { $0 ?? -1 }
            let spans: [Any] = answer.firstErrorSpans.map { span -> Any in
                guard let span else { return NSNull() }
                return [span.lowerBound, span.upperBound]
            }
            var entry: [String: Any] = ["prompt_tokens": prompts, "completion_tokens": tokens, "texts": texts]
            entry["rewards"] = rewards
            entry["correct"] = rewards.map { $0 == 1 }
            entry["scores"] = answer.scores
            entry["first_errors"] = errors
            entry["spans"] = spans
            groupsJSON.append(entry)
        }
        #expect(feedback[0].firstErrors == [0, 1, 2, 1] && feedback[0].firstErrorSpans.allSatisfy { $0 != nil })

        let cases: [(String, any GroupStrategy, String, String)] = [
            ("grpo", try StrategyDescriptor.grpo.strategy(), "grpo", "sequence"),
        ] + (try CreditRule.allCases.map { rule in
            ("sgpo-\(rule.rawValue)", try StrategyDescriptor.sgpo.strategy(["credit": rule.rawValue]), "sgpo", rule.rawValue)
        })
        var casesJSON: [[String: Any]] = []
        for (name, strategy, kind, credit) in cases {
            let policy = try policy()
            // What the step will compute, computed here for the comparison.
            var strategyGroups: [StrategyGroup] = []
            for (g, (_, rewards)) in Self.groups.enumerated() {
                let rewardsOfGroup = GroupRewards(rewards: rewards, correct: rewards.map { $0 == 1 })
                var group = StrategyGroup(rewards: rewardsOfGroup, tokenCounts: completions[g].map(\.tokens.count))
                if try strategy.wantsFeedback(for: group) {
                    group = StrategyGroup(
                        rewards: rewardsOfGroup, feedback: feedback[g], tokenCounts: group.tokenCounts,
                        firstErrorTokens: try zip(completions[g], feedback[g].firstErrorSpans).map { completion, span in
                            try span.map { try policy.tokenIndex(ofByte: $0.lowerBound, in: completion.tokens) }
                        })
                }
                strategyGroups.append(group)
            }
            let scored = try strategy.advantages(for: strategyGroups)
            let rows = completions.flatMap { $0 }
            let batch = TokenBatch(sequences: rows.map(\.sequence), pad: 0)
            let full = try policy.backend.logprobs(batch, model: .policy, temperature: 1)
            let logprobs = rows.enumerated().map { r, row in
                (0..<row.tokens.count).map { Double(full[r * batch.stride + row.promptTokens.count + $0]) }
            }
            let tokenAdvantages = completions.indices.map { g in
                completions[g].indices.map { i in
                    (0..<completions[g][i].tokens.count).map { scored.advantage(group: g, response: i, token: $0) }
                }
            }
            let width = rows.map(\.tokens.count).max()!
            let pad = { (values: [[Double]]) in values.flatMap { $0 + Array(repeating: 0, count: width - $0.count) } }
            let loss = PolicyLoss().evaluate(PolicyLoss.Input(
                logprobs: pad(logprobs), oldLogprobs: pad(logprobs), refLogprobs: nil, lengths: rows.map(\.tokens.count),
                advantages: scored.advantages.flatMap { $0 }, tokenAdvantages: pad(tokenAdvantages.flatMap { $0 }),
                stride: width))
            let gradient = rows.enumerated().flatMap { r, row in
                (0..<row.tokens.count).map { loss.gradLogprob[r * width + $0] }
            }

            // The real step: offline groups with their rewards, the judge asked
            // by the step itself, the update through the plugin.
            var settings = GRPOSettings()
            settings.groupSize = 4
            settings.strategy = strategy
            settings.optimizer = optimizer
            let step = GRPOStep(policy: policy, reward: reward, judge: judge, settings: settings)
            let (metrics, _) = try step.run(step: 1, offline: Self.groups.map { texts, rewards in
                OfflineGroup(example: Example(prompt: Self.prompt, answer: "53"), completions: texts,
                             rewards: rewards, correct: rewards.map { $0 == 1 })
            })
            #expect(metrics[.feedbackUnlocated] ?? 0 == 0)
            let after = directory.appendingPathComponent("\(name).safetensors").path
            try policy.backend.save(to: after)
            casesJSON.append([
                "name": name, "strategy": kind, "credit": credit,
                "prism": [
                    "advantages": scored.advantages, "token_advantages": tokenAdvantages,
                    "logprobs": logprobs.flatMap { $0 }, "grad_logprob": gradient,
                    "grad_norm": try #require(metrics[.gradNorm]), "weights_after": after,
                ] as [String: Any],
            ])
        }

        let setup: [String: Any] = [
            "weights": initial, "layers": 2, "heads": 4, "advantage_epsilon": AdvantageEstimator.defaultEpsilon,
            "optimizer": ["lr": optimizer.learningRate, "beta1": optimizer.beta1, "beta2": optimizer.beta2,
                          "eps": optimizer.epsilon, "weight_decay": optimizer.weightDecay,
                          "max_grad_norm": optimizer.maxGradNorm],
            "groups": groupsJSON, "cases": casesJSON,
        ]
        let input = directory.appendingPathComponent("parity.json")
        try JSONSerialization.data(withJSONObject: setup).write(to: input)
        let result = try TestSupport.run(python, [
            TestSupport.packageRoot.appendingPathComponent("Tests/Parity/grpo_reference.py").path, input.path,
        ])
        try #require(result.status == 0, "the reference failed: \(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: [String: Any]])
        var credited: [String: Int] = [:]
        for (name, _, _, _) in cases {
            let r = try #require(report[name], "no result for \(name): \(result.stdout)")
            func value(_ key: String) -> Double { (r[key] as? Double) ?? (r[key] as? Int).map(Double.init) ?? .infinity }
            // Advantages and the objective's gradient are float64 on both sides;
            // log-probs and gradients go through float32 models.
            #expect(value("advantages") < 1e-12, "\(name): advantages differ by \(value("advantages"))")
            #expect(value("token_advantages") < 1e-12, "\(name): per-token advantages differ by \(value("token_advantages"))")
            #expect(value("grad_logprob") < 1e-12, "\(name): d loss / d logprob differs by \(value("grad_logprob"))")
            #expect(value("logprobs") < 1e-4, "\(name): log-probs differ by \(value("logprobs"))")
            #expect(value("grad_norm_relative") < 1e-6, "\(name): gradient norms differ by \(value("grad_norm_relative")) (relative)")
            #expect(value("update_relative") < 1e-3, "\(name): updates differ by \(value("update_relative")) (relative)")
            #expect(r["clipped"] as? Bool == true, "\(name): the gradient was not clipped; lower max_grad_norm")
            credited[name] = Int(value("credited_tokens"))
        }
        // The rules do change what is credited: prefix credits fewest tokens.
        #expect(credited["sgpo-prefix"]! < credited["sgpo-split"]! && credited["sgpo-split"]! < credited["sgpo-sequence"]!)
    }
}
