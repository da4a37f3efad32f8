import CPrism
import PrismCore

extension PluginInstance {
    /// The instance as a ``GroupStrategy`` (interface `prism.strategy/1`,
    /// ABI 1.1), and whether it needs the judge.
    /// - Throws: `interfaceNotProvided`, `structTooSmall` or `missingFunction`.
    public func groupStrategy() throws(PluginError) -> (strategy: any GroupStrategy, needsJudge: Bool) {
        let table = try unsafe requireInterface(
            PRISM_STRATEGY_V1_ID, as: prism_strategy_v1.self,
            functions: [("advantages", offset(\prism_strategy_v1.advantages))])
        let adapter = unsafe StrategyAdapter(instance: self, table: table.pointee)
        return (adapter, unsafe table.pointee.flags & UInt32(PRISM_STRATEGY_NEEDS_JUDGE) != 0)
    }
}

/// C copies of groups, alive for one call; release with `deallocate()`.
@unsafe struct StrategyGroupArena {
    private var allocations: [UnsafeMutableRawPointer] = unsafe []

    private mutating func copy<T: BitwiseCopyable>(_ values: [T]) -> UnsafePointer<T> {
        let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: max(values.count, 1))
        _ = unsafe buffer.initialize(from: values)
        unsafe allocations.append(UnsafeMutableRawPointer(buffer.baseAddress!))
        return unsafe UnsafePointer(buffer.baseAddress!)
    }

    /// The C view of `group`; with `withFeedback` false the judge's answer is left out.
    mutating func group(_ group: StrategyGroup, withFeedback: Bool = true) -> prism_strategy_group {
        let feedback = withFeedback ? group.feedback : nil
        return unsafe prism_strategy_group(
            struct_size: UInt32(MemoryLayout<prism_strategy_group>.size), count: UInt32(group.rewards.count),
            rewards: copy(group.rewards.rewards),
            correct: copy(group.rewards.correct.map { UInt8($0 ? 1 : 0) }),
            token_counts: copy(group.tokenCounts.map { UInt32(clamping: $0) }),
            scores: feedback == nil ? nil : copy(feedback!.scores),
            first_error: feedback == nil ? nil : copy(feedback!.firstErrors.map { Int32(clamping: $0 ?? -1) }),
            first_error_token: feedback == nil ? nil : copy(group.firstErrorTokens.map { Int32(clamping: $0 ?? -1) }))
    }

    func deallocate() {
        for unsafe pointer in unsafe allocations { unsafe pointer.deallocate() }
    }
}

/// Calls a `prism_strategy_v1` table and checks what comes back.
final class StrategyAdapter: GroupStrategy {
    let instance: PluginInstance
    let table: prism_strategy_v1

    init(instance: PluginInstance, table: prism_strategy_v1) {
        self.instance = instance
        self.table = table
    }

    /// The judge is asked only when the plugin says so.
    func wantsFeedback(for group: StrategyGroup) throws -> Bool {
        guard let call = unsafe table.wants_feedback else { return false }
        var arena = unsafe StrategyGroupArena()
        defer { unsafe arena.deallocate() }
        var cGroup = unsafe arena.group(group, withFeedback: false)
        var wants: UInt8 = 0
        try instance.check(unsafe call(instance.handle, &cGroup, &wants), "wants_feedback")
        return wants != 0
    }

    func disposition(for group: StrategyGroup) throws -> Disposition {
        guard let call = unsafe table.dispose else { return .keep }
        var arena = unsafe StrategyGroupArena()
        defer { unsafe arena.deallocate() }
        var cGroup = unsafe arena.group(group)
        var disposition = Int32(PRISM_DISPOSITION_KEEP)
        try instance.check(unsafe call(instance.handle, &cGroup, &disposition), "dispose")
        guard let kind = Disposition(rawValue: disposition) else {
            throw instance.invalidOutput("dispose", "disposition \(disposition); expected 0 (keep), 1 (drop) or 2 (resample)")
        }
        return kind
    }

    func advantages(for groups: [StrategyGroup]) throws -> ScoredBatch {
        let responses = groups.map(\.rewards.count).reduce(0, +)
        let tokens = groups.flatMap(\.tokenCounts).reduce(0, +)
        var advantages = [Double](repeating: 0, count: responses)
        var rewards = groups.flatMap(\.rewards.rewards)
        var tokenAdvantages = [Double](repeating: .nan, count: tokens)
        var arena = unsafe StrategyGroupArena()
        defer { unsafe arena.deallocate() }
        let cGroups = unsafe groups.map { unsafe arena.group($0) }
        let status = unsafe cGroups.withUnsafeBufferPointer { groupBuffer in
            unsafe advantages.withUnsafeMutableBufferPointer { a in
                unsafe rewards.withUnsafeMutableBufferPointer { r in
                    unsafe tokenAdvantages.withUnsafeMutableBufferPointer { t in
                        var out = unsafe prism_strategy_output(
                            struct_size: UInt32(MemoryLayout<prism_strategy_output>.size), reserved: 0,
                            advantages: a.baseAddress ?? emptyPointer(), rewards: r.baseAddress ?? emptyPointer(),
                            token_advantages: t.baseAddress ?? emptyPointer())
                        return unsafe table.advantages(
                            instance.handle, groupBuffer.baseAddress ?? UnsafePointer(emptyPointer()),
                            UInt32(groups.count), &out)
                    }
                }
            }
        }
        try instance.check(status, "advantages")
        if let bad = advantages.firstIndex(where: { !$0.isFinite }) {
            throw instance.invalidOutput("advantages", "advantage \(advantages[bad]) for completion \(bad); expected a finite number")
        }
        if let bad = tokenAdvantages.firstIndex(where: \.isInfinite) {
            throw instance.invalidOutput("advantages", "token advantage \(tokenAdvantages[bad]) at token \(bad); expected a finite number or NaN")
        }
        // Back to [groups][G] and [groups][G][tokens].
        var scored = ScoredBatch(kinds: groups.map(\.rewards.kind), rewards: [], advantages: [])
        var perToken: [[[Double]]] = []
        var response = 0, token = 0
        for group in groups {
            scored.advantages.append(Array(advantages[response..<(response + group.rewards.count)]))
            scored.rewards.append(Array(rewards[response..<(response + group.rewards.count)]))
            perToken.append(group.tokenCounts.enumerated().map { i, count in
                defer { token += count }
                return (0..<count).map { t in
                    let value = tokenAdvantages[token + t]
                    return value.isNaN ? advantages[response + i] : value
                }
            })
            response += group.rewards.count
        }
        // Per-token advantages only when the plugin wrote any.
        if tokenAdvantages.contains(where: { !$0.isNaN }) { scored.tokenAdvantages = perToken }
        let plain = groups.flatMap(\.rewards.rewards)
        let changedGroups = groups.indices.filter { g in
            zip(scored.rewards[g], groups[g].rewards.rewards).contains { $0 != $1 && !($0.isNaN && $1.isNaN) }
        }
        scored.diversifiedGroups = changedGroups.count
        scored.diversifiedResponses = zip(rewards, plain).filter { $0 != $1 && !($0.isNaN && $1.isNaN) }.count
        return scored
    }
}
