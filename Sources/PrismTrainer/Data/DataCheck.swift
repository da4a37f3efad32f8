import PrismCore

/// Every line of a dataset checked before step 1: parsed, its prompt
/// tokenized by the model's tokenizer and measured against the model's
/// maximum length (and, when SFT will train on them, the worked solutions
/// too), so a bad line 151 stops the run before it starts, naming the line.
struct DataCheck {
    let policy: Policy
    let config: ConfigFile

    /// The examples of the file `key` names ([] when the key is empty).
    /// - Throws: ``DataError`` naming the file, the line and the limit.
    func load(_ key: String, solutions: Bool = false) throws -> [Example] {
        let path = config.string(key)
        guard !path.isEmpty else {
            if key == "data.train" { throw TrainerError("data.train: no training problems (set data.train to a JSONL file)") }
            return []
        }
        let lines = try JSONL.readNumbered(Example.self, from: path)
        guard !lines.isEmpty else { throw DataError(file: path, line: 0, message: "no problems (the file is empty) (\(key))") }
        let limit = policy.info.maxSequenceLength
        for (line, example) in lines {
            let prompt: [Int32]
            do {
                prompt = try policy.promptTokens(example.prompt)
            } catch {
                throw DataError(file: path, line: line, message: "prompt: the model's tokenizer refused it: \(error)")
            }
            guard prompt.count < limit else {
                throw DataError(file: path, line: line, message:
                    "prompt is \(prompt.count) tokens, which leaves no room for an answer within the model's "
                    + "\(limit) (at most \(limit - 1) tokens, the begin token included)")
            }
            if solutions {
                do {
                    _ = try policy.backend.tokenize(example.solution)
                } catch {
                    throw DataError(file: path, line: line, message: "solution (for sft.steps): the model's tokenizer refused it: \(error)")
                }
            }
        }
        return lines.map(\.item)
    }
}

/// A run stopped because a step failed (a backend, sampler or other plugin
/// call the step cannot do without): the last checkpoint stands, and
/// `--resume` continues from it.
public struct RunFailure: Error, CustomStringConvertible {
    public var step: Int
    /// The newest checkpoint on disk, or nil.
    public var lastCheckpoint: Int?
    public var directory: RunDirectory
    public var error: any Error

    public var description: String {
        let resume = lastCheckpoint.map { "the last checkpoint is step \($0); continue with: prism train --resume \(directory.path)" }
            ?? "no checkpoint was written"
        return "step \(step) failed: \(error); the run stopped (\(resume))"
    }
}
