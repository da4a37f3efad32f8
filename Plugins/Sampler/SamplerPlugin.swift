// The sampler as a Prism plugin: prism.sampler/1.
//
// Config (all optional): "temperature" (default 1; 0 = greedy), "top_k"
// (0 = off), "top_p" (1 = off), "min_p" (0 = off), "greedy" (false). They
// compose in that order. Each non-greedy row consumes exactly one
// prism_rng_uniform draw from the host's state; greedy rows consume none.
import CPrism
import PluginKit

final class TokenSampler: PluginObject {
    let rule: SamplingRule
    let lastError = ErrorText()
    init(rule: SamplingRule) { self.rule = rule }
}

private let createErrors = CreateErrors()

private func parse(_ text: String) throws(ConfigError) -> SamplingRule {
    let c = try PluginConfig(json: text, allowed: ["temperature", "top_k", "top_p", "min_p", "greedy"])
    var rule = SamplingRule()
    rule.temperature = try c.double("temperature", default: 1, in: 0...1000)
    rule.topK = try c.int("top_k", default: 0, in: 0...Int(Int32.max))
    rule.topP = try c.double("top_p", default: 1, in: 0...1)
    rule.minP = try c.double("min_p", default: 0, in: 0...1)
    rule.greedy = try c.bool("greedy", default: false)
    guard rule.topP > 0 else { throw ConfigError("config key 'top_p': expected a number in (0, 1]") }
    return rule
}

private nonisolated(unsafe) let samplerTable = immortal(prism_sampler_v1(
    struct_size: UInt32(MemoryLayout<prism_sampler_v1>.size), reserved: 0,
    sample: { raw, logits, rows, vocab, rng, out in
        let sampler = Unmanaged<TokenSampler>.fromOpaque(raw!).takeUnretainedValue()
        guard vocab > 0 else {
            sampler.lastError.set("sample: vocab is 0")
            return PRISM_E_INVALID_ARGUMENT
        }
        let greedy = sampler.rule.greedy || sampler.rule.temperature == 0
        for r in 0..<Int(rows) {
            let row = UnsafeBufferPointer(start: logits + r * Int(vocab), count: Int(vocab))
            guard let p = sampler.rule.distribution(row) else {
                sampler.lastError.set("sample: row \(r) has no finite logit")
                return PRISM_E_INVALID_ARGUMENT
            }
            out[r] = Int32(SamplingRule.draw(p, uniform: greedy ? 0 : prism_rng_uniform(rng)))
        }
        return PRISM_OK
    }
))

private nonisolated(unsafe) let entry = immortal(prism_plugin_entry(
    struct_size: UInt32(MemoryLayout<prism_plugin_entry>.size),
    abi_major: UInt16(PRISM_ABI_MAJOR),
    abi_minor: UInt16(PRISM_ABI_MINOR),
    id: staticCString("org.prism.sampler"),
    name: staticCString("Token sampler"),
    version: staticCString("1.0.0"),
    description: staticCString("Temperature, top-k, top-p, min-p and greedy sampling on the host's random state."),
    create: { _, config, out in
        createErrors.create(out) { TokenSampler(rule: try parse(config.string)) }
    },
    destroy: { TokenSampler.destroy($0) },
    get_interface: { _, id in
        String(cString: id) == PRISM_SAMPLER_V1_ID ? UnsafeRawPointer(samplerTable) : nil
    },
    last_error: { TokenSampler.lastError($0, creating: createErrors) }
))

@c(prism_get_plugin_entry)
public func prismGetPluginEntry(_ hostABIMajor: UInt16) -> UnsafePointer<prism_plugin_entry>? {
    hostABIMajor == UInt16(PRISM_ABI_MAJOR) ? UnsafePointer(entry) : nil
}
