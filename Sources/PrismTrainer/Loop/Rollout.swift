import PrismCore

/// Offline groups (`prism rollout`): completions of a config's policy for
/// `data.train`'s prompts, scored by its reward plugin.
public enum Rollout {
    /// `prompts` groups of `grpo.group_size` completions, for the training
    /// problems in order (repeated when there are fewer), generated 16
    /// prompts at a time at `grpo.temperature` with the config's seed.
    /// - Throws: when `data.train` is empty or unreadable, or a plugin fails.
    public static func generate(config: ConfigFile, components: Components, prompts: Int) throws -> [OfflineGroup] {
        let train = try JSONL.read(Example.self, from: config.string("data.train"))
        guard !train.isEmpty else { throw TrainerError("data.train: no examples") }
        let policy = try Policy(backend: components.backend, sampler: components.sampler,
                                temperature: Float(config.double("grpo.temperature")))
        var rng = RandomState(seed: UInt64(config.int("seed")))
        var groups: [OfflineGroup] = []
        let chosen = (0..<prompts).map { train[$0 % train.count] }
        for start in stride(from: 0, to: chosen.count, by: 16) {
            let chunk = Array(chosen[start..<min(start + 16, chosen.count)])
            let generated = try policy.generate(chunk.map(\.prompt), count: config.int("grpo.group_size"),
                                                maxNewTokens: config.int("grpo.max_new_tokens"), rng: &rng)
            for (example, group) in zip(chunk, generated) {
                let scores = try components.reward.score(group.map {
                    RewardSample(prompt: example.prompt, completion: $0.text, reference: example.answer,
                                 metadataJSON: example.metadataJSON)
                })
                groups.append(OfflineGroup(example: example, completions: group.map(\.text),
                                           rewards: scores.map { $0.reward.isNaN ? nil : $0.reward },
                                           correct: scores.map(\.correct)))
            }
        }
        return groups
    }
}
