/// A batch of reward samples whose texts live in one contiguous UTF-8 buffer.
///
/// The trainer appends each completion once as it is generated; a reward
/// plugin then reads the texts in place through the C ABI, with no per-string
/// copies or reference counting on the hot path (see `prism bench abi`).
public struct RewardBatch: Sendable, Equatable {
    /// The texts of every sample, back to back.
    public private(set) var utf8: [UInt8] = []
    /// `[count][4][2]` flattened: (start, length) in `utf8` of the prompt,
    /// completion, reference and metadata JSON of each sample.
    public private(set) var spans: [Int] = []

    /// The texts of a sample, in the order they are stored.
    public enum Field: Int, Sendable, CaseIterable {
        case prompt = 0, completion, reference, metadataJSON
    }

    public init() {}

    public init(_ samples: [RewardSample]) {
        for sample in samples { append(sample) }
    }

    /// The number of samples.
    public var count: Int { spans.count / 8 }
    public var isEmpty: Bool { spans.isEmpty }

    public mutating func append(_ sample: RewardSample) {
        append(
            prompt: sample.prompt, completion: sample.completion, reference: sample.reference,
            metadataJSON: sample.metadataJSON)
    }

    public mutating func append(prompt: String, completion: String, reference: String, metadataJSON: String = "") {
        for text in [prompt, completion, reference, metadataJSON] {
            spans.append(utf8.count)
            spans.append(text.utf8.count)
            utf8.append(contentsOf: text.utf8)
        }
    }

    /// Where a field of sample `index` lies in ``utf8``.
    public func range(_ index: Int, _ field: Field) -> Range<Int> {
        let start = spans[8 * index + 2 * field.rawValue]
        return start..<(start + spans[8 * index + 2 * field.rawValue + 1])
    }

    /// Sample `index`, decoded back into strings.
    public subscript(index: Int) -> RewardSample {
        func text(_ field: Field) -> String { String(decoding: utf8[range(index, field)], as: UTF8.self) }
        return RewardSample(
            prompt: text(.prompt), completion: text(.completion), reference: text(.reference),
            metadataJSON: text(.metadataJSON))
    }
}
