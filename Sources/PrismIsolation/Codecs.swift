import PrismCore

// How each plugin call's arguments and results travel between the host and
// a runner. The same functions write on one side and read on the other.

extension WireWriter {
    mutating func rewardBatch(_ batch: RewardBatch) throws {
        try array(batch.utf8)
        try array(batch.spans)
    }

    mutating func rewardScores(_ scores: [RewardScore]) throws {
        try array(scores.map(\.reward))
        try bools(scores.map(\.correct))
    }

    mutating func feedbackGroup(_ group: FeedbackGroup) throws {
        string(group.prompt)
        string(group.reference)
        strings(group.referenceSteps)
        string(group.metadataJSON)
        strings(group.completions)
        try array(group.rewards)
        try bools(group.correct)
    }

    mutating func feedback(_ feedback: Feedback) throws {
        try array(feedback.scores)
        try array(feedback.firstErrors.map { $0 ?? -1 })
        try array(feedback.firstErrorSpans.flatMap { $0.map { [$0.lowerBound, $0.upperBound] } ?? [-1, -1] })
        int(Int(feedback.disposition.rawValue))
    }

    mutating func feedbackReport(_ report: FeedbackReport) {
        for value in [report.promptTokens, report.completionTokens, report.requests, report.retries, report.cacheHits,
                      report.unparseable, report.timeouts, report.httpErrors, report.connectionErrors] {
            int(value)
        }
    }

    mutating func strategyGroup(_ group: StrategyGroup) throws {
        try array(group.rewards.rewards)
        try bools(group.rewards.correct)
        bool(group.feedback != nil)
        if let feedback = group.feedback { try self.feedback(feedback) }
        try array(group.tokenCounts)
        try array(group.firstErrorTokens.map { $0 ?? -1 })
    }

    mutating func scoredBatch(_ batch: ScoredBatch) throws {
        strings(batch.kinds.map(\.rawValue))
        try doublesList(batch.rewards)
        try doublesList(batch.advantages)
        bool(batch.tokenAdvantages != nil)
        if let perToken = batch.tokenAdvantages {
            try array(perToken.map(\.count))
            try doublesList(perToken.flatMap { $0 })
        }
        int(batch.diversifiedGroups)
        int(batch.diversifiedResponses)
        int(batch.unlocatedResponses)
    }

    mutating func tokenBatch(_ batch: TokenBatch) throws {
        try array(batch.tokens)
        try array(batch.lengths)
        int(batch.stride)
    }

    mutating func backendInfo(_ info: BackendInfo) {
        int(info.vocabSize)
        optional(info.bosToken)
        optional(info.eosToken)
        optional(info.padToken)
        int(info.maxSequenceLength)
        int(info.parameterCount)
    }

    mutating func optimizerStep(_ step: OptimizerStep) {
        for value in [step.learningRate, step.beta1, step.beta2, step.epsilon, step.weightDecay, step.maxGradNorm] { double(value) }
    }

    mutating func rng(_ rng: RandomState) {
        for word in [rng.words.0, rng.words.1, rng.words.2, rng.words.3] { int(Int(Int64(bitPattern: word))) }
    }
}

extension WireReader {
    mutating func rewardBatch() throws -> RewardBatch {
        let utf8 = try array(UInt8.self)
        let spans = try array(Int.self)
        guard spans.count % 8 == 0 else { throw WireError("reward spans not a multiple of 8") }
        var batch = RewardBatch()
        func text(_ k: Int) throws -> String {
            let start = spans[k], count = spans[k + 1]
            guard start >= 0, count >= 0, start + count <= utf8.count else { throw WireError("a reward text out of range") }
            return String(decoding: utf8[start..<(start + count)], as: UTF8.self)
        }
        for i in 0..<(spans.count / 8) {
            batch.append(prompt: try text(8 * i), completion: try text(8 * i + 2), reference: try text(8 * i + 4),
                         metadataJSON: try text(8 * i + 6))
        }
        return batch
    }

    mutating func rewardScores() throws -> [RewardScore] {
        let rewards = try array(Double.self)
        let correct = try bools()
        guard rewards.count == correct.count else { throw WireError("rewards and flags differ in count") }
        return zip(rewards, correct).map { RewardScore(reward: $0, correct: $1) }
    }

    mutating func feedbackGroup() throws -> FeedbackGroup {
        let prompt = try string(), reference = try string(), steps = try strings(), metadata = try string()
        let completions = try strings()
        let rewards = try array(Double.self)
        let correct = try bools()
        return FeedbackGroup(prompt: prompt, reference: reference, referenceSteps: steps, metadataJSON: metadata,
                             completions: completions, rewards: rewards, correct: correct)
    }

    mutating func feedback() throws -> Feedback {
        let scores = try array(Double.self)
        let errors = try array(Int.self)
        let spans = try array(Int.self)
        guard errors.count == scores.count, spans.count == 2 * scores.count else { throw WireError("feedback arrays differ in count") }
        let raw = Int32(truncatingIfNeeded: try int())
        guard let disposition = Disposition(rawValue: raw) else { throw WireError("disposition \(raw)") }
        let ranges: [Range<Int>?] = (0..<scores.count).map { i in
            spans[2 * i] < 0 || spans[2 * i + 1] < spans[2 * i] ? nil : spans[2 * i]..<spans[2 * i + 1]
        }
        return Feedback(scores: scores, firstErrors: errors.map { $0 < 0 ? nil : $0 }, firstErrorSpans: ranges,
                        disposition: disposition)
    }

    mutating func feedbackReport() throws -> FeedbackReport {
        var report = FeedbackReport()
        report.promptTokens = try int()
        report.completionTokens = try int()
        report.requests = try int()
        report.retries = try int()
        report.cacheHits = try int()
        report.unparseable = try int()
        report.timeouts = try int()
        report.httpErrors = try int()
        report.connectionErrors = try int()
        return report
    }

    mutating func strategyGroup() throws -> StrategyGroup {
        let rewards = try array(Double.self)
        let correct = try bools()
        guard rewards.count == correct.count else { throw WireError("group rewards and flags differ in count") }
        let feedback = try bool() ? try self.feedback() : nil
        let counts = try array(Int.self)
        let first = try array(Int.self)
        guard counts.count == rewards.count, first.count == rewards.count,
              feedback.map({ $0.scores.count == rewards.count }) ?? true
        else { throw WireError("a strategy group's arrays differ in count") }
        return StrategyGroup(rewards: GroupRewards(rewards: rewards, correct: correct), feedback: feedback,
                             tokenCounts: counts, firstErrorTokens: first.map { $0 < 0 ? nil : $0 })
    }

    mutating func scoredBatch() throws -> ScoredBatch {
        let kinds = try strings().map { name in
            guard let kind = GroupKind(rawValue: name) else { throw WireError("group kind '\(name)'") }
            return kind
        }
        let rewards = try doublesList()
        let advantages = try doublesList()
        var perToken: [[[Double]]]?
        if try bool() {
            let counts = try array(Int.self)
            let flat = try doublesList()
            guard counts.allSatisfy({ $0 >= 0 }), counts.reduce(0, +) == flat.count else { throw WireError("per-token advantages") }
            var start = 0
            perToken = counts.map { count in
                defer { start += count }
                return Array(flat[start..<(start + count)])
            }
        }
        return ScoredBatch(kinds: kinds, rewards: rewards, advantages: advantages, tokenAdvantages: perToken,
                           diversifiedGroups: try int(), diversifiedResponses: try int(), unlocatedResponses: try int())
    }

    mutating func tokenBatch() throws -> TokenBatch {
        let tokens = try array(Int32.self)
        let lengths = try array(Int.self)
        let stride = try int()
        guard stride >= 0, tokens.count == lengths.count * stride, lengths.allSatisfy({ $0 >= 0 && $0 <= stride }) else {
            throw WireError("a token batch whose shape does not add up")
        }
        return TokenBatch(tokens: tokens, lengths: lengths, stride: stride)
    }

    mutating func backendInfo() throws -> BackendInfo {
        BackendInfo(vocabSize: try int(), bosToken: try optional(), eosToken: try optional(), padToken: try optional(),
                    maxSequenceLength: try int(), parameterCount: try int())
    }

    mutating func optimizerStep() throws -> OptimizerStep {
        var step = OptimizerStep(learningRate: try double())
        step.beta1 = try double()
        step.beta2 = try double()
        step.epsilon = try double()
        step.weightDecay = try double()
        step.maxGradNorm = try double()
        return step
    }

    mutating func rng() throws -> RandomState {
        func word() throws -> UInt64 { UInt64(bitPattern: Int64(try int())) }
        return RandomState(words: (try word(), try word(), try word(), try word()))
    }
}
