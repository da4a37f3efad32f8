import PrismCore

/// Conformance checks for `prism.backend/1`: shapes and contracts only (a
/// model's numerics are tested by its own gradient checks).
struct BackendChecks {
    let instance: PluginInstance
    let callCount: Int

    func run(_ record: (String, () throws -> String) -> Void) {
        let backend: any ComputeBackend
        do {
            backend = try instance.computeBackend()
        } catch {
            record("backend: interface table") { throw error }
            return
        }
        var info: BackendInfo?
        record("backend: info") {
            info = try backend.info()
            try expect(info!.maxSequenceLength >= 2, "max_seq_len \(info!.maxSequenceLength)")
            return "vocab \(info!.vocabSize), max length \(info!.maxSequenceLength), \(info!.parameterCount) parameters"
        }
        guard let info else { return }
        record("backend: empty text tokenizes to nothing") {
            let tokens = try backend.tokenize("")
            try expect(tokens.isEmpty, "\"\" gave \(tokens)")
            return "ok"
        }
        record("backend: non-ASCII text is refused or round-trips") {
            do {
                let tokens = try backend.tokenize(StressText.nonASCII)
                let text = try backend.detokenize(tokens)
                return "round trip gave \(text.utf8.count) bytes"
            } catch let error as PluginError where error.code == .callFailed {
                return "refused: \(error.reason)"
            }
        }
        record("backend: tokenize_prompt (ABI 1.3, optional) gives ids within the vocabulary") {
            let text = "12+3="
            let wrapped: [Int32]?
            do { wrapped = try backend.tokenizePrompt(text) } catch let error as PluginError where error.code == .callFailed {
                return "refused \"\(text)\": \(error.reason)"
            }
            guard let ids = wrapped else { return "not provided (the host uses [bos] + tokenize)" }
            try expect(!ids.isEmpty, "no ids for \"\(text)\"")
            try expect(ids.allSatisfy { $0 >= 0 && Int($0) < info.vocabSize }, "ids outside 0..<\(info.vocabSize): \(ids)")
            return "\(ids.count) ids"
        }
        let first = Int32(info.bosToken ?? 0)
        let prompts = TokenBatch(sequences: [[first], [first, first]], pad: Int32(info.padToken ?? 0))
        record("backend: decoding shapes") {
            let logits = try backend.beginDecoding(prompts)
            try expect(logits.count == 2 * info.vocabSize, "\(logits.count) logits for 2 rows")
            let next = try backend.decodeStep([first, first])
            try expect(next.count == 2 * info.vocabSize, "\(next.count) logits for 2 rows")
            try expect(!next.contains { $0.isNaN }, "NaN logits")
            return "ok"
        }
        record("backend: log-probs are <= 0 and 0 outside the sequence") {
            let logprobs = try backend.logprobs(prompts, model: .policy, temperature: 1)
            try expect(logprobs.count == 2 * prompts.stride, "\(logprobs.count) log-probs for [2][\(prompts.stride)]")
            try expect(logprobs.allSatisfy { $0 <= 0 && !$0.isNaN }, "log-probs \(logprobs)")
            try expect(logprobs[0] == 0 && logprobs[prompts.stride] == 0, "position 0 is not 0")
            return "ok"
        }
        record("backend: logprobs_keep + backward_kept (ABI 1.5, optional) match logprobs and release the pass") {
            let two = TokenBatch(sequences: [[first, first, first], [first, first]], pad: Int32(info.padToken ?? 0))
            guard let kept = try backend.logprobsKeepingPass(two, temperature: 1) else {
                return "not provided (the host calls logprobs, then backward)"
            }
            let separate = try backend.logprobs(two, model: .policy, temperature: 1)
            try expect(kept.count == separate.count, "\(kept.count) log-probs for [2][\(two.stride)]")
            let worst = zip(kept, separate).map { abs($0 - $1) }.max() ?? 0
            try expect(worst <= 1e-5, "log-probs differ from logprobs' by \(worst)")
            _ = try backend.logprobsKeepingPass(two, temperature: 1)
            try backend.backwardKeptPass(gradLogprobs: [Float](repeating: 0, count: kept.count))
            do {
                try backend.backwardKeptPass(gradLogprobs: [Float](repeating: 0, count: kept.count))
                throw CheckFailure("a second backward_kept succeeded: the pass was not released")
            } catch let error as PluginError where error.code == .callFailed {}
            try backend.zeroGrad()
            return "ok"
        }
        record("backend: decode_step_rows (ABI 1.6, optional) gives decode_step's logits for the rows going") {
            let three = TokenBatch(sequences: [[first], [first, first], [first]], pad: Int32(info.padToken ?? 0))
            let vocab = info.vocabSize
            _ = try backend.beginDecoding(three)
            let all1 = try backend.decodeStep([first, first, first])
            let all2 = try backend.decodeStep([first, first, first])
            _ = try backend.beginDecoding(three)
            guard let some1 = try backend.decodeStep(rows: [0, 2], tokens: [first, first]) else {
                return "not provided (the host decodes finished rows with padding)"
            }
            let rows1 = [Float](all1[0..<vocab]) + [Float](all1[(2 * vocab)..<(3 * vocab)])
            let some2 = try backend.decodeStep(rows: [2], tokens: [first]) ?? []
            for (got, want, what) in [(some1, rows1, "rows 0 and 2"), (some2, [Float](all2[(2 * vocab)..<(3 * vocab)]), "row 2, a step later")] {
                try expect(got.count == want.count, "\(got.count) logits for \(what), expected \(want.count)")
                let worst = zip(got, want).map { abs($0 - $1) }.max() ?? 0
                try expect(worst <= 1e-4, "logits for \(what) differ from decode_step's by \(worst)")
            }
            return "ok"
        }
        record("backend: \(min(callCount, 200)) log-prob calls") {
            for _ in 0..<min(callCount, 200) { _ = try backend.logprobs(prompts, model: .policy, temperature: 1) }
            return "ok"
        }
    }
}
