import PrismCore

/// The rows of an update: every non-empty completion of the kept groups.
struct UpdateRows {
    var sequences: [[Int32]] = []
    /// Where each row's completion starts (its prompt length).
    var starts: [Int] = []
    var advantages: [Double] = []
    /// Per row, its tokens' advantages; nil when the strategy gave none.
    var tokenAdvantages: [[Double]]?
    /// Per row, its tokens' log-probs recorded at generation; nil unless
    /// every row has them.
    var generationLogprobs: [[Double]]?

    init(groups: [CollectedGroup], scored: ScoredBatch) {
        var perToken: [[Double]] = []
        for (g, group) in groups.enumerated() {
            for (i, completion) in group.completions.enumerated() where !completion.tokens.isEmpty {
                sequences.append(completion.sequence)
                starts.append(completion.promptTokens.count)
                advantages.append(scored.advantages[g][i])
                if scored.tokenAdvantages != nil {
                    perToken.append(completion.tokens.indices.map { scored.advantage(group: g, response: i, token: $0) })
                }
            }
        }
        tokenAdvantages = scored.tokenAdvantages == nil ? nil : perToken
        let recorded = groups.flatMap { $0.completions.filter { !$0.tokens.isEmpty }.map(\.logprobs) }
        if recorded.allSatisfy({ $0 != nil }) {
            generationLogprobs = recorded.map { $0!.map(Double.init) }
        }
    }

    var count: Int { sequences.count }
    func length(_ r: Int) -> Int { sequences[r].count - starts[r] }
    var teachesNothing: Bool {
        !advantages.contains { $0 != 0 } && !(tokenAdvantages?.contains { $0.contains { $0 != 0 } } ?? false)
    }
}

/// The statistics of a step's updates, averaged over them.
struct UpdateSummary {
    var loss = 0.0, kl = 0.0, clipLow = 0.0, clipHigh = 0.0, clipDual = 0.0, ratio = 0.0
    var clipFraction = 0.0, approxKL = 0.0, gradNorm = 0.0
    var tokens = 0
    var updates = 0

    mutating func add(_ output: PolicyLoss.Output, gradNorm norm: Double) {
        loss += output.loss
        kl += output.meanKL
        clipLow += output.clipFractionLow
        clipHigh += output.clipFractionHigh
        clipDual += output.dualClipFraction
        ratio += output.meanRatio
        clipFraction += output.clipFraction
        approxKL += output.approxKL
        gradNorm += norm
        updates += 1
    }
}

extension StepMetrics {
    /// The update's statistics, each the mean over the step's updates:
    /// `loss`, `kl`, `clip_ratio/low|high|dual`, `ratio/mean`,
    /// `loss/clip_fraction`, `loss/approx_kl`, `grad_norm`, and `tokens`
    /// (completion tokens of the batch) and `updates`.
    mutating func record(_ summary: UpdateSummary) {
        let n = Double(max(summary.updates, 1))
        set(.loss, summary.loss / n)
        set(.kl, summary.kl / n)
        set(.clipRatioLow, summary.clipLow / n)
        set(.clipRatioHigh, summary.clipHigh / n)
        set(.clipRatioDual, summary.clipDual / n)
        set(.ratioMean, summary.ratio / n)
        set(.tokens, Double(summary.tokens))
        set(.lossClipFraction, summary.clipFraction / n)
        set(.lossApproxKl, summary.approxKL / n)
        set(.gradNorm, summary.gradNorm / n)
        set(.updates, Double(summary.updates))
    }
}

extension GRPOStep {
    /// The learn half: advantages from the strategy, the update, and the
    /// step's metrics and samples. The same for online and offline steps.
    func learn(step: Int, _ collected: CollectedStep) throws -> (StepMetrics, [SampleRecord]) {
        let clock = ContinuousClock()
        let started = clock.now
        var strategyErrors = collected.strategyErrors
        let kept = collected.kept
        var scored: ScoredBatch
        var learns = true
        do {
            try policy.checkStop("strategy.advantages")
            scored = try settings.strategy.advantages(for: kept.map(\.strategyGroup))
            // The last safe point: from here the update changes the weights.
            try policy.checkStop("update")
        } catch let stop as Cancelled {
            throw stop
        } catch {
            // A failing strategy plugin: the groups are reported with zero
            // advantages and the step makes no update.
            strategyErrors += 1
            lastStrategyError = "\(error)"
            learns = false
            scored = ScoredBatch(kinds: kept.map(\.rewards.kind), rewards: kept.map(\.rewards.rewards),
                                 advantages: kept.map { Array(repeating: 0, count: $0.rewards.count) })
        }
        var metrics = StepMetrics()
        metrics.record(scored, plain: kept.map(\.rewards))
        metrics.set(.rewardsNotApplicable, Double(collected.notApplicableRewards))
        metrics.record(plans: collected.plans)
        metrics.recordFeedback(latenciesMs: collected.judgeLatenciesMs, errors: collected.judgeErrors)
        metrics.set(.rewardErrors, Double(collected.rewardErrors))
        metrics.set(.strategyErrors, Double(strategyErrors))
        metrics.recordCompletions(lengths: kept.flatMap(\.completions).map(\.tokens.count))
        metrics.set(.tokensGenerated, Double(collected.generatedTokens))
        metrics.set(.samplingGroups, Double(collected.sampledGroups))
        metrics.set(.samplingAllNegative, Double(collected.sampledAllNegative))
        metrics.set(.feedbackJudgedTokens, Double(collected.judgedTokens))
        metrics.record(collected.judgeReport)

        let updateStarted = clock.now
        if learns, let summary = try update(UpdateRows(groups: kept, scored: scored)) {
            metrics.record(summary)
        }
        let total = collected.generationTime + collected.scoringTime + (clock.now - started)
        metrics.set(.timeGenerationS, seconds(collected.generationTime))
        metrics.set(.timeScoringS, seconds(collected.scoringTime))
        metrics.set(.timeUpdateS, seconds(clock.now - updateStarted))
        metrics.set(.timeStepS, seconds(total))
        metrics.set(.tokensPerS, Double(collected.generatedTokens) / max(seconds(total), 1e-9))
        return (metrics, samples(step: step, kept: kept, scored: scored))
    }

    /// The first `settings.logSamples` completions of the kept groups, in order.
    func samples(step: Int, kept: [CollectedGroup], scored: ScoredBatch) -> [SampleRecord] {
        var samples: [SampleRecord] = []
        for (g, group) in kept.enumerated() where samples.count < settings.logSamples {
            for (i, completion) in group.completions.enumerated() where samples.count < settings.logSamples {
                let r = group.rewards.rewards[i]
                samples.append(SampleRecord(
                    step: step, prompt: group.example.prompt, completion: completion.text, answer: group.example.answer,
                    reward: r.isNaN ? nil : r, correct: group.rewards.correct[i], advantage: scored.advantages[g][i],
                    judgeScore: group.feedback.flatMap { $0.scores[i].isNaN ? nil : $0.scores[i] }))
            }
        }
        return samples
    }

    /// The policy-gradient updates: μ passes over the batch, each split into
    /// minibatches, every one the clipped token objective back-propagated
    /// through the backend and one optimizer step. No forward pass is spent
    /// twice (Decisions #49):
    /// - a minibatch's log-probs and its backward share one forward when the
    ///   backend keeps the pass (ABI 1.5); otherwise `logprobs` then `backward`;
    /// - the old log-probs (the sampling policy's) cost no forward at μ = 1:
    ///   with one minibatch they are the first pass's own (the ratio is 1),
    ///   with several they were recorded at generation. Only μ > 1, or
    ///   offline rows in several minibatches, takes a forward of the batch
    ///   before the first update;
    /// - reference log-probs only when the KL term is on.
    /// - Returns: nil when there is nothing to learn (no advantage and no KL).
    private func update(_ rows: UpdateRows) throws -> UpdateSummary? {
        guard rows.count > 0, !rows.teachesNothing || settings.loss.klBeta != 0 else { return nil }
        let pad = Int32(policy.info.padToken ?? 0)
        let temperature = policy.temperature
        let backend = policy.backend
        let all = TokenBatch(sequences: rows.sequences, pad: pad)
        let passes = max(1, settings.updatesPerBatch)
        let parts = max(1, min(settings.minibatches, rows.count))
        let allRows = Array(0..<rows.count)
        // nil: the first minibatch's own log-probs (μ = 1, one minibatch).
        var old: [[Double]]? = passes == 1 ? rows.generationLogprobs : nil
        if old == nil, passes > 1 || parts > 1 {
            old = completionLogprobs(try backend.logprobs(all, model: .policy, temperature: temperature),
                                     rows: allRows, rowsData: rows, stride: all.stride)
        }
        let reference = settings.loss.klBeta == 0 ? nil
            : completionLogprobs(try backend.logprobs(all, model: .reference, temperature: temperature),
                                 rows: allRows, rowsData: rows, stride: all.stride)
        var summary = UpdateSummary()
        for pass in 0..<passes {
            for part in 0..<parts {
                let chosen = Array((part * rows.count / parts)..<((part + 1) * rows.count / parts))
                let batch = parts == 1 ? all : TokenBatch(sequences: chosen.map { rows.sequences[$0] }, pad: pad)
                let kept = try backend.logprobsKeepingPass(batch, temperature: temperature)
                let current: [[Double]]
                if let kept {
                    current = completionLogprobs(kept, rows: chosen, rowsData: rows, stride: batch.stride)
                } else if pass == 0 && part == 0, let old {
                    current = chosen.map { old[$0] }  // before any update the policy is the one that sampled
                } else {
                    current = completionLogprobs(try backend.logprobs(batch, model: .policy, temperature: temperature),
                                                 rows: chosen, rowsData: rows, stride: batch.stride)
                }
                let before = old.map { old in chosen.map { old[$0] } } ?? current
                let width = chosen.map(rows.length).max() ?? 0
                func flat(_ values: [[Double]]) -> [Double] {
                    values.flatMap { $0 + Array(repeating: 0, count: width - $0.count) }
                }
                let input = PolicyLoss.Input(
                    logprobs: flat(current), oldLogprobs: flat(before),
                    refLogprobs: reference.map { ref in flat(chosen.map { ref[$0] }) },
                    lengths: chosen.map(rows.length), advantages: chosen.map { rows.advantages[$0] },
                    tokenAdvantages: rows.tokenAdvantages.map { perToken in flat(chosen.map { perToken[$0] }) },
                    stride: width)
                let loss = settings.loss.evaluate(input)
                var grad = [Float](repeating: 0, count: batch.rows * batch.stride)
                for (local, r) in chosen.enumerated() {
                    for j in 0..<rows.length(r) {
                        grad[local * batch.stride + rows.starts[r] + j] = Float(loss.gradLogprob[local * width + j])
                    }
                }
                if kept != nil {
                    try backend.backwardKeptPass(gradLogprobs: grad)
                } else {
                    try backend.backward(batch, temperature: temperature, gradLogprobs: grad)
                }
                summary.add(loss, gradNorm: try backend.optimizerStep(settings.optimizer))
            }
        }
        summary.tokens = rows.sequences.indices.map(rows.length).reduce(0, +)
        return summary
    }

    /// The completion part of per-token log-probs `[rows][stride]` of a
    /// batch holding the rows `rows` (indices into `rowsData`) in order: one
    /// array per row, as long as that row's completion.
    private func completionLogprobs(_ full: [Float], rows: [Int], rowsData: UpdateRows, stride: Int) -> [[Double]] {
        rows.enumerated().map { position, r in
            let base = position * stride + rowsData.starts[r]
            return (0..<rowsData.length(r)).map { Double(full[base + $0]) }
        }
    }
}
