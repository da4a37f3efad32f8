import CPrism
import PrismCore

extension PluginInstance {
    /// The instance as a ``RewardFunction`` (interface `prism.reward/1`).
    /// - Throws: `interfaceNotProvided`, `structTooSmall` or `missingFunction`.
    public func rewardFunction() throws(PluginError) -> any RewardFunction {
        let table = try unsafe requireInterface(
            PRISM_REWARD_V1_ID, as: prism_reward_v1.self,
            functions: [("score", offset(\prism_reward_v1.score))])
        return unsafe RewardAdapter(instance: self, table: table.pointee)
    }
}

/// Calls `prism_reward_v1.score` and checks what comes back.
///
/// Reward calls are on the hot path, so the texts are passed in place from the
/// batch's UTF-8 buffer and the sample array is kept between calls: a call
/// allocates only its result.
@safe final class RewardAdapter: RewardFunction {
    let instance: PluginInstance
    let table: prism_reward_v1
    private var samples = unsafe ScratchBuffer<prism_reward_sample>()
    private var rewards = unsafe ScratchBuffer<Double>()
    private var flags = unsafe ScratchBuffer<UInt8>()

    init(instance: PluginInstance, table: prism_reward_v1) {
        self.instance = instance
        self.table = table
    }

    deinit {
        unsafe samples.deallocate()
        unsafe rewards.deallocate()
        unsafe flags.deallocate()
    }

    func score(_ batch: RewardBatch) throws -> [RewardScore] {
        let count = batch.count
        let sampleBase = unsafe samples.reserve(count)
        let rewardBase = unsafe rewards.reserve(count)
        let flagBase = unsafe flags.reserve(count)
        let status = unsafe batch.utf8.withUnsafeBufferPointer { text in
            unsafe batch.spans.withUnsafeBufferPointer { spans in
                let base = unsafe UnsafeRawPointer(text.baseAddress ?? UnsafePointer(emptyPointer()))
                    .assumingMemoryBound(to: CChar.self)
                func str(_ k: Int) -> prism_str {
                    unsafe prism_str(data: base + spans[k], len: spans[k + 1])
                }
                for i in 0..<count {
                    unsafe (sampleBase + i).initialize(to: prism_reward_sample(
                        prompt: str(8 * i), completion: str(8 * i + 2),
                        reference: str(8 * i + 4), metadata_json: str(8 * i + 6)))
                    unsafe rewardBase[i] = .nan
                    unsafe flagBase[i] = 0
                }
                return unsafe table.score(instance.handle, sampleBase, count, rewardBase, flagBase)
            }
        }
        try instance.check(status, "score")
        return unsafe try [RewardScore](unsafeUninitializedCapacity: count) { scores, initialized in
            for i in 0..<count {
                let reward = unsafe rewardBase[i]
                let flag = unsafe flagBase[i]
                guard !reward.isInfinite else {
                    throw instance.invalidOutput("score", "reward \(reward) for sample \(i); expected a finite number or NaN")
                }
                guard flag <= 1 else {
                    throw instance.invalidOutput("score", "correct flag \(flag) for sample \(i); expected 0 or 1")
                }
                unsafe (scores.baseAddress! + i).initialize(to: RewardScore(reward: reward, correct: flag == 1))
                initialized = i + 1
            }
        }
    }
}

/// A growable buffer reused across calls. Never shrinks; contents are not kept.
@unsafe struct ScratchBuffer<Element> {
    private var base: UnsafeMutablePointer<Element>? = nil
    private var capacity = 0

    /// Storage for at least `count` elements, to be initialised by the caller;
    /// never null, even for 0.
    mutating func reserve(_ count: Int) -> UnsafeMutablePointer<Element> {
        if let base = unsafe base, unsafe capacity >= max(count, 1) { return unsafe base }
        unsafe base?.deallocate()
        unsafe capacity = unsafe max(count, 16, capacity * 2)
        let fresh = unsafe UnsafeMutablePointer<Element>.allocate(capacity: capacity)
        unsafe base = fresh
        return unsafe fresh
    }

    func deallocate() { unsafe base?.deallocate() }
}

/// A non-null pointer for empty arrays, which the ABI says are never touched.
func emptyPointer<T>() -> UnsafeMutablePointer<T> {
    unsafe UnsafeMutablePointer<T>(bitPattern: MemoryLayout<T>.alignment)!
}
