import PrismCore

/// Conformance checks for `prism.feedback/1`.
struct FeedbackChecks {
    let instance: PluginInstance
    let callCount: Int

    func run(_ record: (String, () throws -> String) -> Void) {
        let judge: any FeedbackGenerator
        do {
            judge = try instance.feedbackGenerator()
        } catch {
            record("feedback: interface table") { throw error }
            return
        }
        let group = FeedbackGroup(
            prompt: "12+34+7=", reference: "53", referenceSteps: ["12+34=46", "46+7=53"],
            completions: ["12+34=46;46+7=53;#53", "12+34=47;47+7=54;#54", "12+34=46;46+7=52;#52", ""],
            rewards: [1, 0, 0, 0], correct: [true, false, false, false])
        record("feedback: empty group") {
            let feedback = try judge.assess(FeedbackGroup(
                prompt: "1+1=", reference: "2", completions: [], rewards: [], correct: []))
            try expect(feedback.scores.isEmpty, "returned \(feedback.scores.count) scores for no completions")
            return "disposition \(feedback.disposition)"
        }
        record("feedback: NaN rewards") {
            var nanGroup = group
            nanGroup.rewards = [.nan, .nan, 0, .nan]
            let feedback = try judge.assess(nanGroup)
            return "scores \(feedback.scores)"
        }
        record("feedback: non-ASCII and long UTF-8") {
            let stress = FeedbackGroup(
                prompt: StressText.nonASCII, reference: StressText.nonASCII, referenceSteps: [StressText.nonASCII],
                metadataJSON: "{\"k\":\"🚀\"}", completions: [StressText.nonASCII, StressText.long],
                rewards: [0, 0], correct: [false, false])
            let feedback = try judge.assess(stress)
            try expect(feedback.scores.count == 2, "returned \(feedback.scores.count) scores for 2 completions")
            return "ok"
        }
        record("feedback: deterministic") {
            let first = try judge.assess(group)
            let second = try judge.assess(group)
            try expect(first.firstErrors == second.firstErrors && first.disposition == second.disposition,
                "the same group judged \(first.firstErrors) then \(second.firstErrors)")
            return "first errors \(first.firstErrors.map { $0.map(String.init) ?? "none" })"
        }
        record("feedback: \(callCount) calls") {
            for _ in 0..<callCount { _ = try judge.assess(group) }
            return "ok"
        }
    }
}
