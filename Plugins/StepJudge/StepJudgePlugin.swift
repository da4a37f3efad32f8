// The step judge as a Prism plugin: C ABI glue around ArithmeticSteps.swift.
//
// Interface: prism.feedback/1. For each completion of a group: the score is
// the fraction of steps before the first wrong one (RTS, 1 when all are
// right), first_error its 0-based index (-1 when none). When the prompt is
// not an arithmetic chain the judge has no opinion (NaN, -1). Disposition:
// always keep. Config: an empty JSON object ("{}"); any key is refused.
import CPrism
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// One instance; crosses the ABI as an opaque retained pointer.
final class StepJudge {
    /// The last error message, NUL-terminated, kept alive for last_error.
    let lastError = ErrorText()
}

/// A message stored in stable memory, so a prism_str can point into it.
final class ErrorText {
    private var storage: UnsafeMutableBufferPointer<CChar>? = nil

    deinit { storage?.deallocate() }

    func set(_ message: String) {
        storage?.deallocate()
        let utf8 = Array(message.utf8CString)
        let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: utf8.count)
        _ = buffer.initialize(from: utf8)
        storage = buffer
    }

    var prismStr: prism_str {
        guard let storage, let base = storage.baseAddress else { return prism_str(data: nil, len: 0) }
        return prism_str(data: base, len: storage.count - 1)
    }
}

/// Failures of `create`, per thread (read back with last_error(NULL)).
private let createErrors = CreateErrors()

private final class CreateErrors: @unchecked Sendable {
    private var byThread: [UInt: ErrorText] = [:]
    private var lock = pthread_mutex_t()
    init() { pthread_mutex_init(&lock, nil) }

    func set(_ message: String) {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        let text = byThread[UInt(pthread_self())] ?? ErrorText()
        text.set(message)
        byThread[UInt(pthread_self())] = text
    }

    func get() -> prism_str {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        return byThread[UInt(pthread_self())]?.prismStr ?? prism_str(data: nil, len: 0)
    }
}

extension prism_str {
    /// The bytes as a Swift string (invalid UTF-8 is repaired).
    var string: String {
        guard let data, len > 0 else { return "" }
        return UnsafeRawBufferPointer(start: data, count: len)
            .withMemoryRebound(to: UInt8.self) { String(decoding: $0, as: UTF8.self) }
    }
}

/// Validates the config: empty or a JSON object with no keys.
private func checkConfig(_ text: String) throws(ConfigError) {
    let trimmed = text.drop(while: \.isWhitespace)
    if trimmed.isEmpty { return }
    guard let object = try? JSONDecoder().decode([String: AnyDecodable].self, from: Data(trimmed.utf8)) else {
        throw ConfigError(message: "config: expected a JSON object")
    }
    if let key = object.keys.sorted().first {
        throw ConfigError(message: "config: unknown key '\(key)' (the step judge takes no options)")
    }
}

private struct ConfigError: Error { var message: String }

/// Accepts any JSON value; used only to list an object's keys.
private struct AnyDecodable: Decodable {
    init(from decoder: any Decoder) throws {}
}

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

private nonisolated(unsafe) let feedbackTable: UnsafeMutablePointer<prism_feedback_v1> = {
    let table = UnsafeMutablePointer<prism_feedback_v1>.allocate(capacity: 1)
    table.initialize(to: prism_feedback_v1(
        struct_size: UInt32(MemoryLayout<prism_feedback_v1>.size),
        reserved: 0,
        assess: { instance, group, score, firstError, disposition in
            assess(instance, group, score, firstError, disposition)
        }
    ))
    return table
}()

// MARK: - entry

private func create(
    _ host: UnsafePointer<prism_host>,
    _ config: prism_str,
    _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>
) -> prism_status {
    do {
        try checkConfig(config.string)
    } catch {
        createErrors.set(error.message)
        return PRISM_E_CONFIG
    }
    out.pointee = Unmanaged.passRetained(StepJudge()).toOpaque()
    return PRISM_OK
}

private nonisolated(unsafe) let entry: UnsafeMutablePointer<prism_plugin_entry> = {
    let table = UnsafeMutablePointer<prism_plugin_entry>.allocate(capacity: 1)
    table.initialize(to: prism_plugin_entry(
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
    return table
}()

private func staticCString(_ s: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

@c(prism_get_plugin_entry)
public func prismGetPluginEntry(_ hostABIMajor: UInt16) -> UnsafePointer<prism_plugin_entry>? {
    hostABIMajor == UInt16(PRISM_ABI_MAJOR) ? UnsafePointer(entry) : nil
}
