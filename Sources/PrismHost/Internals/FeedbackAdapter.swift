import CPrism
import PrismCore

extension PluginInstance {
    /// The instance as a ``FeedbackGenerator`` (interface `prism.feedback/1`).
    /// - Throws: `interfaceNotProvided`, `structTooSmall` or `missingFunction`.
    public func feedbackGenerator() throws(PluginError) -> any FeedbackGenerator {
        let table = try unsafe requireInterface(
            PRISM_FEEDBACK_V1_ID, as: prism_feedback_v1.self,
            functions: [("assess", offset(\prism_feedback_v1.assess))])
        return unsafe FeedbackAdapter(instance: self, table: table.pointee)
    }
}

/// Calls `prism_feedback_v1.assess` and checks what comes back.
final class FeedbackAdapter: FeedbackGenerator {
    let instance: PluginInstance
    let table: prism_feedback_v1

    init(instance: PluginInstance, table: prism_feedback_v1) {
        self.instance = instance
        self.table = table
    }

    func assess(_ group: FeedbackGroup) throws -> Feedback {
        var report = FeedbackReport()
        return try assess(group, report: &report)
    }

    func assess(_ group: FeedbackGroup, report: inout FeedbackReport) throws -> Feedback {
        let count = group.completions.count
        guard group.rewards.count == count, group.correct.count == count else {
            throw PluginError(
                .callFailed, plugin: instance.library.id,
                reason: "assess: group has \(count) completions but \(group.rewards.count) rewards and \(group.correct.count) flags")
        }
        var arena = unsafe TextArena()
        defer { unsafe arena.deallocate() }
        let completions = unsafe group.completions.map { unsafe arena.str($0) }
        let stepsJSON = group.referenceSteps.isEmpty ? "" : jsonArray(group.referenceSteps)
        let correct = group.correct.map { UInt8($0 ? 1 : 0) }
        var scores = [Double](repeating: .nan, count: count)
        var firstErrors = [Int32](repeating: -1, count: count)
        var spans = [prism_byte_span](repeating: prism_byte_span(begin: -1, end: -1), count: count)
        var disposition = Int32(PRISM_DISPOSITION_KEEP)
        var cReport = prism_feedback_report()
        let status = unsafe completions.withUnsafeBufferPointer { completionBuffer in
            unsafe group.rewards.withUnsafeBufferPointer { rewardBuffer in
                unsafe correct.withUnsafeBufferPointer { correctBuffer in
                  unsafe spans.withUnsafeMutableBufferPointer { spanBuffer in
                   unsafe withUnsafeMutablePointer(to: &cReport) { reportPointer in
                    var cGroup = unsafe prism_feedback_group(
                        struct_size: UInt32(MemoryLayout<prism_feedback_group>.size), count: UInt32(count),
                        prompt: arena.str(group.prompt), reference: arena.str(group.reference),
                        reference_steps_json: arena.str(stepsJSON), metadata_json: arena.str(group.metadataJSON),
                        completions: completionBuffer.baseAddress ?? UnsafePointer(emptyPointer()),
                        rewards: rewardBuffer.baseAddress ?? UnsafePointer(emptyPointer()),
                        correct: correctBuffer.baseAddress ?? UnsafePointer(emptyPointer()),
                        first_error_spans: spanBuffer.baseAddress ?? emptyPointer(), report: reportPointer)
                    return unsafe scores.withUnsafeMutableBufferPointer { scoreBuffer in
                        unsafe firstErrors.withUnsafeMutableBufferPointer { errorBuffer in
                            unsafe table.assess(
                                instance.handle, &cGroup, scoreBuffer.baseAddress ?? emptyPointer(),
                                errorBuffer.baseAddress ?? emptyPointer(), &disposition)
                        }
                    }
                   }
                  }
                }
            }
        }
        // The report counts, whether the call succeeded or not.
        report = report + FeedbackReport(cReport)
        try instance.check(status, "assess")
        for i in 0..<count {
            guard scores[i].isNaN || (0...1).contains(scores[i]) else {
                throw instance.invalidOutput("assess", "score \(scores[i]) for completion \(i); expected a value in [0, 1] or NaN")
            }
            guard firstErrors[i] >= -1 else {
                throw instance.invalidOutput("assess", "first_error \(firstErrors[i]) for completion \(i); expected -1 or an index >= 0")
            }
            let span = spans[i], length = group.completions[i].utf8.count
            let unset = span.begin == -1 && span.end == -1
            guard unset || (0 <= span.begin && span.begin <= span.end && Int(span.end) <= length) else {
                throw instance.invalidOutput("assess", "first_error_spans[\(i)] = {\(span.begin), \(span.end)}; expected "
                    + "{-1, -1} or 0 <= begin <= end <= \(length) (the completion's bytes)")
            }
        }
        guard let kind = Disposition(rawValue: disposition) else {
            throw instance.invalidOutput("assess", "disposition \(disposition); expected 0 (keep), 1 (drop) or 2 (resample)")
        }
        // A span is kept only with a first error to go with it.
        let located: [Range<Int>?] = (0..<count).map { i in
            firstErrors[i] >= 0 && spans[i].begin >= 0 ? Int(spans[i].begin)..<Int(spans[i].end) : nil
        }
        return Feedback(
            scores: scores, firstErrors: firstErrors.map { $0 < 0 ? nil : Int($0) }, firstErrorSpans: located,
            disposition: kind)
    }
}

/// A JSON array of strings.
func jsonArray(_ strings: [String]) -> String {
    "[" + strings.map(jsonString).joined(separator: ",") + "]"
}

/// A JSON string literal for `text`.
func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

extension FeedbackReport {
    /// The report a judge filled in (ABI 1.4).
    init(_ c: prism_feedback_report) {
        self.init()
        promptTokens = Int(clamping: c.prompt_tokens)
        completionTokens = Int(clamping: c.completion_tokens)
        requests = Int(c.requests)
        retries = Int(c.retries)
        cacheHits = Int(c.cache_hits)
        unparseable = Int(c.unparseable)
        timeouts = Int(c.timeouts)
        httpErrors = Int(c.http_errors)
        connectionErrors = Int(c.connection_errors)
    }
}
