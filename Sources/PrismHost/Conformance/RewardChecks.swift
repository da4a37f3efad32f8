import PrismCore

/// Conformance checks for `prism.reward/1`.
struct RewardChecks {
    let instance: PluginInstance
    let callCount: Int

    func run(_ record: (String, () throws -> String) -> Void) {
        let reward: any RewardFunction
        do {
            reward = try instance.rewardFunction()
        } catch {
            record("reward: interface table") { throw error }
            return
        }
        let sample = RewardSample(prompt: "12+34=", completion: "12+34=46;#46", reference: "46")
        record("reward: empty batch") {
            let scores = try reward.score([])
            try expect(scores.isEmpty, "returned \(scores.count) scores for no samples")
            return "0 scores"
        }
        record("reward: non-ASCII and long UTF-8") {
            let samples = [
                RewardSample(prompt: StressText.nonASCII, completion: StressText.nonASCII, reference: StressText.nonASCII),
                RewardSample(prompt: "p", completion: StressText.long, reference: "53"),
                RewardSample(prompt: "", completion: "", reference: "", metadataJSON: "{\"k\":\"数\"}"),
            ]
            let scores = try reward.score(samples)
            try expect(scores.count == samples.count, "returned \(scores.count) scores for \(samples.count) samples")
            return "\(StressText.long.utf8.count)-byte completion scored"
        }
        record("reward: deterministic") {
            let first = try reward.score([sample])
            let second = try reward.score([sample])
            try expect(first[0].correct == second[0].correct
                && (first[0].reward == second[0].reward || (first[0].reward.isNaN && second[0].reward.isNaN)),
                "the same sample scored \(first[0]) then \(second[0])")
            return "reward \(first[0].reward)"
        }
        record("reward: \(callCount) calls and a batch of 4096") {
            for _ in 0..<callCount { _ = try reward.score([sample]) }
            let scores = try reward.score(Array(repeating: sample, count: 4096))
            try expect(scores.count == 4096, "returned \(scores.count) scores for 4096 samples")
            return "ok"
        }
        record("reward: outputs are finite or NaN") {
            let scores = try reward.score([sample, RewardSample(prompt: "", completion: "", reference: "")])
            // The adapter already rejects infinities and flags other than 0/1.
            return "rewards \(scores.map(\.reward))"
        }
    }
}
