/// A character-level tokenizer: ids 0 = pad, 1 = bos, 2 = eos, then one id
/// per Unicode scalar of the configured vocabulary, in order.
struct CharTokenizer {
    static let pad: Int32 = 0, bos: Int32 = 1, eos: Int32 = 2
    static let specialCount = 3

    private var ids: [Unicode.Scalar: Int32] = [:]
    private var scalars: [Unicode.Scalar] = []

    init(vocab: String) {
        scalars = Array(vocab.unicodeScalars)
        for (i, scalar) in scalars.enumerated() { ids[scalar] = Int32(Self.specialCount + i) }
    }

    var count: Int { Self.specialCount + scalars.count }

    /// The ids of `text`, or the first scalar that is not in the vocabulary.
    func encode(_ text: String) -> Result<[Int32], TokenizeError> {
        var out: [Int32] = []
        out.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            guard let id = ids[scalar] else { return .failure(TokenizeError(scalar: scalar)) }
            out.append(id)
        }
        return .success(out)
    }

    /// The text of `tokens`; special and unknown ids are skipped.
    func decode(_ tokens: UnsafeBufferPointer<Int32>) -> String {
        var text = String.UnicodeScalarView()
        for id in tokens where id >= Self.specialCount && Int(id) < count {
            text.append(scalars[Int(id) - Self.specialCount])
        }
        return String(text)
    }
}

struct TokenizeError: Error, CustomStringConvertible {
    var scalar: Unicode.Scalar
    var description: String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        return "tokenize: character '\(scalar.escaped(asASCII: false))' (U+\(String(repeating: "0", count: max(0, 4 - hex.count)) + hex)) is not in the vocabulary"
    }
}
