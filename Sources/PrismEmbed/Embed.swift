import CPrismEmbed
import Foundation
import PrismCore
import PrismHost
import PrismRuntime
import PrismTrainer

// The functions of SDK/include/prism/embed.h. Each is `@c @implementation`:
// the compiler checks its Swift signature against the header's declaration.
// The header documents the contracts (threads, ownership); the comments
// here say how they are met.

// MARK: - Versions

private let versionString = StaticString("1.0.0")

@c @implementation
public func prism_embed_version() -> UnsafePointer<CChar>! {
    UnsafeRawPointer(versionString.utf8Start).assumingMemoryBound(to: CChar.self)
}

@c @implementation
public func prism_embed_version_number() -> Int32 {
    PRISM_EMBED_VERSION_MAJOR * 10000 + PRISM_EMBED_VERSION_MINOR * 100 + PRISM_EMBED_VERSION_PATCH
}

@c @implementation
public func prism_embed_check_version(_ header: Int32) -> Int32 {
    header / 10000 == PRISM_EMBED_VERSION_MAJOR && header % 10000 / 100 <= PRISM_EMBED_VERSION_MINOR ? 1 : 0
}

// MARK: - Errors and strings

@c @implementation
public func prism_error_message(_ error: OpaquePointer!) -> UnsafePointer<CChar>! {
    guard let found = object(error, as: EmbedError.self) else {
        return UnsafeRawPointer(StaticString("").utf8Start).assumingMemoryBound(to: CChar.self)
    }
    return UnsafePointer(found.message)
}

@c @implementation
public func prism_error_code(_ error: OpaquePointer!) -> prism_embed_status {
    object(error, as: EmbedError.self)?.code ?? PRISM_EMBED_OK
}

@c @implementation
public func prism_error_free(_ error: OpaquePointer!) {
    release(error, as: EmbedError.self)
}

@c @implementation
public func prism_string_free(_ string: UnsafeMutablePointer<CChar>!) {
    free(string)
}

// MARK: - Config

@c @implementation
public func prism_config_new() -> OpaquePointer! {
    retained(EmbedConfig(ConfigFile()))
}

@c @implementation
public func prism_config_parse(_ text: UnsafePointer<CChar>!, _ source: UnsafePointer<CChar>!,
                               _ out: UnsafeMutablePointer<OpaquePointer?>!,
                               _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) {
        guard let out else { throw ArgumentError("out: NULL where a place for the config is needed") }
        let name = source == nil ? "config" : try cString(source, "source")
        out.pointee = retained(EmbedConfig(try ConfigFile(yaml: try cString(text, "text"), source: name)))
    }
}

@c @implementation
public func prism_config_load(_ path: UnsafePointer<CChar>!, _ out: UnsafeMutablePointer<OpaquePointer?>!,
                              _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) {
        guard let out else { throw ArgumentError("out: NULL where a place for the config is needed") }
        out.pointee = retained(EmbedConfig(try ConfigFile(path: try cString(path, "path"))))
    }
}

@c @implementation
public func prism_config_set(_ config: OpaquePointer!, _ assignment: UnsafePointer<CChar>!,
                             _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) {
        try required(config, EmbedConfig.self, "config").file.set(try cString(assignment, "assignment"))
    }
}

@c @implementation
public func prism_config_yaml(_ config: OpaquePointer!, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>!,
                              _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) { try give(try required(config, EmbedConfig.self, "config").file.yaml, to: out) }
}

@c @implementation
public func prism_config_free(_ config: OpaquePointer!) {
    release(config, as: EmbedConfig.self)
}

// MARK: - Plugins

private func info(_ library: PluginLibrary) -> [String: Any] {
    ["path": library.path, "id": library.id, "name": library.name, "version": library.version,
     "summary": library.summary, "abi": "\(library.abiMajor).\(library.abiMinor)"]
}

@c @implementation
public func prism_plugin_load(_ name: UnsafePointer<CChar>!, _ out: UnsafeMutablePointer<OpaquePointer?>!,
                              _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) {
        guard let out else { throw ArgumentError("out: NULL where a place for the plugin is needed") }
        out.pointee = retained(EmbedPlugin(try ComponentLoader.library(try cString(name, "name"), key: "plugin")))
    }
}

@c @implementation
public func prism_plugin_info(_ plugin: OpaquePointer!, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>!,
                              _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) { try give(try json(info(try required(plugin, EmbedPlugin.self, "plugin").library)), to: out) }
}

@c @implementation
public func prism_plugins_list(_ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>!,
                               _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) {
        var found: [[String: Any]] = []
        for directory in PluginDiscovery.searchDirectories() {
            for path in PluginDiscovery.libraries(in: directory) {
                do {
                    found.append(info(try PluginLibrary.load(path)))
                } catch let error as PluginError where error.code == .noEntrySymbol {
                    continue  // an ordinary shared library (libPrismEmbed.so itself, say)
                } catch {
                    found.append(["path": path, "error": "\(error)"])
                }
            }
        }
        try give(try json(found), to: out)
    }
}

@c @implementation
public func prism_plugin_free(_ plugin: OpaquePointer!) {
    release(plugin, as: EmbedPlugin.self)
}

// MARK: - Rewards and judges

@c @implementation
public func prism_reward_create(_ config: OpaquePointer!, _ out: UnsafeMutablePointer<OpaquePointer?>!,
                                _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) {
        guard let out else { throw ArgumentError("out: NULL where a place for the reward is needed") }
        out.pointee = retained(EmbedReward(try ComponentLoader.reward(try required(config, EmbedConfig.self, "config").file)))
    }
}

@c @implementation
public func prism_reward_score(_ reward: OpaquePointer!, _ samples: UnsafePointer<prism_sample>!, _ count: Int,
                               _ rewards: UnsafeMutablePointer<Double>!, _ correct: UnsafeMutablePointer<UInt8>!,
                               _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) {
        let scorer = try required(reward, EmbedReward.self, "reward")
        guard count == 0 || (samples != nil && rewards != nil && correct != nil) else {
            throw ArgumentError("samples, rewards and correct: NULL with count \(count)")
        }
        var batch = RewardBatch()
        for i in 0..<count {
            let s = samples[i]
            batch.append(prompt: try optionalText(s.prompt, "samples[\(i)].prompt"),
                         completion: try optionalText(s.completion, "samples[\(i)].completion"),
                         reference: try optionalText(s.reference, "samples[\(i)].reference"),
                         metadataJSON: try optionalText(s.metadata_json, "samples[\(i)].metadata_json"))
        }
        let scores = try scorer.reward.score(batch)
        guard scores.count == count else {
            throw PluginError(.invalidOutput, plugin: "reward", reason: "\(scores.count) scores for \(count) samples")
        }
        for (i, score) in scores.enumerated() {
            rewards[i] = score.reward
            correct[i] = score.correct ? 1 : 0
        }
    }
}

@c @implementation
public func prism_reward_free(_ reward: OpaquePointer!) {
    release(reward, as: EmbedReward.self)
}

@c @implementation
public func prism_judge_create(_ config: OpaquePointer!, _ out: UnsafeMutablePointer<OpaquePointer?>!,
                               _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) {
        guard let out else { throw ArgumentError("out: NULL where a place for the judge is needed") }
        let file = try required(config, EmbedConfig.self, "config").file
        guard let judge = try ComponentLoader.judges(file).training else {
            throw ConfigError("judge.plugin: empty and judge.function not set; the config names no judge")
        }
        out.pointee = retained(EmbedJudge(judge))
    }
}

@c @implementation
public func prism_judge_assess(_ judge: OpaquePointer!, _ group: UnsafePointer<CChar>!,
                               _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>!,
                               _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) {
        let assessor = try required(judge, EmbedJudge.self, "judge")
        let parsed = try feedbackGroup(try cString(group, "group_json"))
        var report = FeedbackReport()
        let feedback = try assessor.judge.assess(parsed, report: &report)
        let names: [Disposition: String] = [.keep: "keep", .drop: "drop", .resample: "resample"]
        try give(try json([
            "scores": feedback.scores.map(number),
            "first_errors": feedback.firstErrors.map { $0.map { $0 as Any } ?? NSNull() },
            "first_error_spans": feedback.firstErrorSpans.map { $0.map { [$0.lowerBound, $0.upperBound] as Any } ?? NSNull() },
            "disposition": names[feedback.disposition]!,
            "report": [
                "prompt_tokens": report.promptTokens, "completion_tokens": report.completionTokens,
                "requests": report.requests, "retries": report.retries, "cache_hits": report.cacheHits,
            ],
        ]), to: out)
    }
}

/// A ``FeedbackGroup`` from prism_judge_assess's JSON.
func feedbackGroup(_ text: String) throws -> FeedbackGroup {
    func bad(_ reason: String) -> ArgumentError { ArgumentError("group_json: \(reason)") }
    guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
        throw bad("expected a JSON object")
    }
    guard let completions = object["completions"] as? [String] else { throw bad("completions: expected an array of strings") }
    let rewards = (object["rewards"] as? [Any])?.map { ($0 as? Double) ?? .nan } ?? []
    let correct = (object["correct"] as? [Any])?.map { ($0 as? Bool) ?? (($0 as? Int) == 1) } ?? []
    guard rewards.count == completions.count, correct.count == completions.count else {
        throw bad("rewards and correct must have one element per completion (\(completions.count))")
    }
    return FeedbackGroup(
        prompt: object["prompt"] as? String ?? "", reference: object["reference"] as? String ?? "",
        referenceSteps: object["reference_steps"] as? [String] ?? [],
        metadataJSON: object["metadata_json"] as? String ?? "",
        completions: completions, rewards: rewards, correct: correct)
}

@c @implementation
public func prism_judge_free(_ judge: OpaquePointer!) {
    release(judge, as: EmbedJudge.self)
}

// MARK: - Runs

/// Sends the trainer's text to the embedder's log callback, a line at a time.
private func logWriter(_ options: prism_run_options?) -> (String) -> Void {
    guard let options, let log = options.log else { return { _ in } }
    let userData = options.log_user_data
    return { text in
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let level = line.contains(" failed") ? PRISM_LOG_WARNING : PRISM_LOG_INFO
            String(line).withCString { log(userData, level, $0) }
        }
    }
}

/// The options the caller passed, reading only the fields its struct_size covers.
private func readOptions(_ pointer: UnsafePointer<prism_run_options>?) throws -> prism_run_options? {
    guard let pointer else { return nil }
    let size = Int(pointer.pointee.struct_size)
    guard size >= MemoryLayout<prism_run_options>.offset(of: \prism_run_options.log_user_data)! + MemoryLayout<UnsafeMutableRawPointer?>.size else {
        throw ArgumentError("options: struct_size \(size) is smaller than prism_run_options 1.0 "
            + "(\(MemoryLayout<prism_run_options>.size)); set it to sizeof(prism_run_options)")
    }
    return pointer.pointee
}

@c @implementation
public func prism_run_create(_ config: OpaquePointer!, _ directory: UnsafePointer<CChar>!,
                             _ options: UnsafePointer<prism_run_options>!, _ out: UnsafeMutablePointer<OpaquePointer?>!,
                             _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) {
        guard let out else { throw ArgumentError("out: NULL where a place for the run is needed") }
        let file = try required(config, EmbedConfig.self, "config").file
        let path = try cString(directory, "directory")
        let options = try readOptions(options)
        let resume = (options?.resume ?? 0) != 0, overwrite = (options?.overwrite ?? 0) != 0, force = (options?.force ?? 0) != 0
        if resume && overwrite { throw ArgumentError("options: resume and overwrite exclude each other") }
        if force && !resume { throw ArgumentError("options: force goes with resume") }
        let runDirectory = RunDirectory(path: path)
        // On resume the caller's config is compared with the run's config.yaml: changes to
        // keys that define the run are refused unless `force` (as `prism train --resume --set`).
        let cancel = CancelFlag()
        let components = try ComponentLoader.components(file, shouldCancel: { cancel.isSet })
        let trainer = Trainer(config: file, directory: runDirectory, components: components,
                              progress: ProgressReporter(live: false, write: logWriter(options)))
        trainer.shouldStop = { cancel.isSet }
        let session = try TrainingSession(trainer: trainer, start: Trainer.Start(resume: resume, overwrite: overwrite, force: force))
        out.pointee = retained(EmbedRun(config: file, session: session, cancel: cancel, plugins: pluginNames(file)))
    }
}

/// What each role runs, for prism_run_plugins.
private func pluginNames(_ config: ConfigFile) -> [String: String?] {
    func plugin(_ role: String) -> String? {
        let name = config.string(role + ".plugin")
        guard !name.isEmpty else { return nil }
        return (try? ComponentLoader.libraryPath(name, key: role + ".plugin")) ?? name
    }
    func function(_ role: FunctionDeclaration.Role) -> String? {
        guard let declaration = try? ComponentLoader.function(config, role) else { return nil }
        return "\(declaration.library):\(declaration.symbol)"
    }
    return ["model": plugin("model"), "sampler": plugin("sampler"), "reward": function(.reward) ?? plugin("reward"),
            "judge": function(.judge) ?? plugin("judge"), "strategy": plugin("strategy")]
}

@c @implementation
public func prism_run_steps(_ run: OpaquePointer!, _ count: Int64, _ onStep: prism_step_fn!,
                            _ userData: UnsafeMutableRawPointer!, _ completed: UnsafeMutablePointer<Int64>!,
                            _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    completed?.pointee = 0
    return guarded(error) {
        let run = try required(run, EmbedRun.self, "run")
        guard count >= 0 else { throw ArgumentError("count: \(count); expected 0 or more steps") }
        let session = run.session
        /// The cancel request is consumed; the run stands at its last step, with that step's checkpoint.
        func cancelled(_ when: String) throws -> CancelledCall {
            _ = run.cancel.consume()
            try session.checkpoint()
            return CancelledCall(description: "cancelled \(when); the run stands at step \(session.lastStep) "
                + "(its checkpoint is on disk)")
        }
        if let failure = run.failure {
            throw StateError(description: "the run takes no more steps after its failure (\(failure)); "
                + "free it and create it again with resume")
        }
        if run.cancel.isSet { throw try cancelled("before the first step of the call") }
        var done: Int64 = 0
        while done < count {
            let outcome: TrainingSession.Outcome
            do {
                outcome = try session.step()
            } catch {
                // A failed step (a plugin, or writing the run directory) may leave the weights
                // part-way through it: this run object takes no more steps (as `prism train` stops).
                run.failure = "\(error)"
                throw error
            }
            switch outcome {
            case .finished:
                return
            case .stopped:
                throw try cancelled("during step \(session.lastStep + 1)")
            case .completed(let step, let metrics, let stopAsked):
                done += 1
                completed?.pointee = done
                let stopByCallback = metrics.withCString { onStep?(userData, Int64(step), $0) ?? 0 } != 0
                if stopAsked || run.cancel.isSet { throw try cancelled("after step \(step)") }
                if stopByCallback { return }
            }
        }
    }
}

@c @implementation
public func prism_run_step_count(_ run: OpaquePointer!) -> Int64 {
    Int64(object(run, as: EmbedRun.self)?.session.lastStep ?? 0)
}

@c @implementation
public func prism_run_finished(_ run: OpaquePointer!) -> Int32 {
    object(run, as: EmbedRun.self)?.session.isFinished == true ? 1 : 0
}

@c @implementation
public func prism_run_evaluate(_ run: OpaquePointer!, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>!,
                               _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) {
        let run = try required(run, EmbedRun.self, "run")
        guard out != nil else { throw ArgumentError("out: NULL where a place for the result is needed") }
        if run.cancel.consume() { throw CancelledCall(description: "cancelled before the evaluation began") }
        let e: Evaluation
        do {
            e = try run.session.evaluate()
        } catch let stop as Cancelled {
            _ = run.cancel.consume()
            throw CancelledCall(description: "evaluation cancelled at \(stop.call)")
        }
        try give(try json([
            "problems": e.problems, "accuracy": number(e.accuracy), "accuracy_stderr": number(e.accuracyStandardError),
            "process_accuracy": number(e.processAccuracy), "step_score": number(e.meanRTS), "k": e.k,
            "pass_at_k": number(e.passAtK),
        ]), to: out)
    }
}

@c @implementation
public func prism_run_checkpoint(_ run: OpaquePointer!, _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) { try required(run, EmbedRun.self, "run").session.checkpoint() }
}

@c @implementation
public func prism_run_plugins(_ run: OpaquePointer!, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>!,
                              _ error: UnsafeMutablePointer<OpaquePointer?>!) -> prism_embed_status {
    guarded(error) {
        let plugins = try required(run, EmbedRun.self, "run").plugins
        try give(try json(plugins.mapValues { $0.map { $0 as Any } ?? NSNull() }), to: out)
    }
}

@c @implementation
public func prism_run_cancel(_ run: OpaquePointer!) {
    object(run, as: EmbedRun.self)?.cancel.set()
}

@c @implementation
public func prism_run_free(_ run: OpaquePointer!) {
    guard let found = object(run, as: EmbedRun.self) else { return }
    // Ends the session (checkpoint, report, lock); its errors go to the log.
    do {
        try found.session.finish(interrupted: false)
    } catch {
        found.session.trainer.progress.log("closing the run failed: \(error)")
    }
    release(run, as: EmbedRun.self)
}
