// The step judge as a Prism plugin: C ABI glue around ArithmeticSteps.swift.
//
// Interface: prism.feedback/1. For each completion of a group: the score is
// the fraction of steps before the first wrong one (RTS, 1 when all are
// right), first_error its 0-based index (-1 when none). When the prompt is
// not an arithmetic chain the judge has no opinion (NaN, -1). Disposition:
// always keep. Config: an empty JSON object ("{}"); any key is refused.
import CPrism
import PluginKit

/// One instance; crosses the ABI as an opaque retained pointer.
final class StepJudge {
    /// The last error message, kept alive for last_error.
    let lastError = ErrorText()
}

/// Failures of `create`, per thread (read back with last_error(NULL)).
private let createErrors = CreateErrors()

// MARK: - feedback/1

private func assess(
    _ instance: UnsafeMutableRawPointer?,
    _ group: UnsafePointer<prism_feedback_group>,
    _ outScore: UnsafeMutablePointer<Double>,
    _ outFirstError: UnsafeMutablePointer<Int32>,
    _ outDisposition: UnsafeMutablePointer<Int32>
) -> prism_status {
    let g = group.pointee
    outDisposition.pointee = PRISM_DISPOSITION_KEEP
    let count = Int(g.count)
    guard count > 0 else { return PRISM_OK }
    guard let problem = ArithmeticProblem(prompt: g.prompt.string[...]) else {
        for i in 0..<count {
            outScore[i] = .nan
            outFirstError[i] = -1
        }
        return PRISM_OK
    }
    for i in 0..<count {
        let verdict = judge(g.completions[i].string[...], problem: problem)
        outScore[i] = verdict.score
        outFirstError[i] = Int32(verdict.firstError ?? -1)
    }
    return PRISM_OK
}

private nonisolated(unsafe) let feedbackTable = immortal(prism_feedback_v1(
        struct_size: UInt32(MemoryLayout<prism_feedback_v1>.size),
        reserved: 0,
        assess: { instance, group, score, firstError, disposition in
            assess(instance, group, score, firstError, disposition)
        }
))

// MARK: - entry

private func create(
    _ host: UnsafePointer<prism_host>,
    _ config: prism_str,
    _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>
) -> prism_status {
    do {
        _ = try PluginConfig(json: config.string, allowed: [])
    } catch {
        createErrors.set(error.message)
        return PRISM_E_CONFIG
    }
    out.pointee = Unmanaged.passRetained(StepJudge()).toOpaque()
    return PRISM_OK
}

private nonisolated(unsafe) let entry = immortal(prism_plugin_entry(
        struct_size: UInt32(MemoryLayout<prism_plugin_entry>.size),
        abi_major: UInt16(PRISM_ABI_MAJOR),
        abi_minor: UInt16(PRISM_ABI_MINOR),
        id: staticCString("org.prism.step-judge"),
        name: staticCString("Arithmetic step judge"),
        version: staticCString("1.0.0"),
        description: staticCString(
            "Finds the first wrong step of arithmetic-chain solutions; score = fraction of steps before it."),
        create: { host, config, out in create(host, config, out) },
        destroy: { instance in
            guard let instance else { return }
            Unmanaged<StepJudge>.fromOpaque(instance).release()
        },
        get_interface: { _, id in
            String(cString: id) == PRISM_FEEDBACK_V1_ID ? UnsafeRawPointer(feedbackTable) : nil
        },
        last_error: { instance in
            guard let instance else { return createErrors.get() }
            return Unmanaged<StepJudge>.fromOpaque(instance).takeUnretainedValue().lastError.prismStr
        }
))

@c(prism_get_plugin_entry)
public func prismGetPluginEntry(_ hostABIMajor: UInt16) -> UnsafePointer<prism_plugin_entry>? {
    hostABIMajor == UInt16(PRISM_ABI_MAJOR) ? UnsafePointer(entry) : nil
}
