import Foundation
import PrismCore

/// What lets a run be stopped from another thread when its own thread is
/// stuck in a plugin call that never returns (in-process plugins cannot be
/// interrupted): the backend behind a lock, whether this step has changed
/// the weights yet, and the state the last completed step ended in.
///
/// ``Trainer/emergencyCheckpoint()`` uses it: when no backend call was made
/// for a whole grace period (so the run is stuck in another plugin's call),
/// the backend is idle and the weights are still those of the last completed
/// step, that step's checkpoint can be written from the stopping thread.
final class RunGuard: @unchecked Sendable {
    /// Held for every backend call, and kept by an emergency checkpoint
    /// until the process exits.
    let backendLock = NSLock()
    private let lock = NSLock()
    private var completed: RunDirectory.State?
    private var completedSaved = true
    private var weightsChanged = false
    private var retention = RunDirectory.Retention.all
    private var stopping = false
    /// Backend calls so far, and as seen by the last emergency check: a run
    /// whose backend is still being called is making progress.
    private var backendCalls = 0
    private var callsSeen = -1

    func countBackendCall() { lock.withLock { backendCalls += 1 } }

    /// The run reached a safe point and is ending in order (its checkpoint,
    /// its report): an emergency stop must wait, not cut it short.
    func markStopping() { lock.withLock { stopping = true } }

    /// A step begins: `state` is the last completed step's (saved or not).
    func begin(after state: RunDirectory.State, saved: Bool, retention: RunDirectory.Retention) {
        lock.withLock {
            completed = state
            completedSaved = saved
            weightsChanged = false
            self.retention = retention
        }
    }

    /// The backend is about to change the weights or the optimizer state.
    func markChanging() { lock.withLock { weightsChanged = true } }

    /// The run is over (or between steps with nothing to save).
    func end() { lock.withLock { completed = nil } }

    /// Saves the last completed step from the calling thread if the run is
    /// stuck and that is safe now.
    /// - Returns: what happened, for the person who stopped the run; nil
    ///   while the run is making progress (wait and ask again).
    func emergencyCheckpoint(directory: RunDirectory, backend: any ComputeBackend) -> String? {
        let (state, saved, changed, keep, orderly, progressed) = lock.withLock {
            defer { callsSeen = backendCalls }
            return (completed, completedSaved, weightsChanged, retention, stopping, backendCalls != callsSeen)
        }
        // Still stopping in order, or still calling the backend (whose calls
        // end): wait for the safe point.
        if orderly || progressed { return nil }
        guard backendLock.try() else { return nil }  // inside a backend call: it will return
        // No backend call for a whole grace period: stuck in another plugin's
        // call. The lock stays held so the stuck thread cannot reach the
        // backend again before the process exits.
        guard let state, state.step > 0 else { return "no step has completed; nothing to save" }
        if saved { return "the last completed step, \(state.step), has its checkpoint" }
        if changed { return "step \(state.step + 1) had changed the weights; the last checkpoint is the newest there is" }
        do {
            try directory.saveCheckpoint(state, backend: backend, retention: keep)
            return "saved the checkpoint of step \(state.step), the last completed step"
        } catch {
            return "could not save step \(state.step): \(error)"
        }
    }
}

/// A backend whose every call holds the run guard's lock, and which tells
/// the guard when the weights are about to change.
final class GuardedBackend: ComputeBackend {
    let inner: any ComputeBackend
    let guardian: RunGuard

    init(_ inner: any ComputeBackend, guardian: RunGuard) {
        self.inner = inner
        self.guardian = guardian
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        guardian.countBackendCall()
        guardian.backendLock.lock()
        defer { guardian.backendLock.unlock() }
        return try body()
    }

    func info() throws -> BackendInfo { try locked { try inner.info() } }
    func tokenize(_ text: String) throws -> [Int32] { try locked { try inner.tokenize(text) } }
    func tokenizePrompt(_ text: String) throws -> [Int32]? { try locked { try inner.tokenizePrompt(text) } }
    func detokenize(_ tokens: [Int32]) throws -> String { try locked { try inner.detokenize(tokens) } }
    func beginDecoding(_ prompts: TokenBatch) throws -> [Float] { try locked { try inner.beginDecoding(prompts) } }
    func decodeStep(_ tokens: [Int32]) throws -> [Float] { try locked { try inner.decodeStep(tokens) } }
    func decodeStep(rows: [Int], tokens: [Int32]) throws -> [Float]? {
        try locked { try inner.decodeStep(rows: rows, tokens: tokens) }
    }
    func logprobs(_ batch: TokenBatch, model: ModelKind, temperature: Float) throws -> [Float] {
        try locked { try inner.logprobs(batch, model: model, temperature: temperature) }
    }
    func backward(_ batch: TokenBatch, temperature: Float, gradLogprobs: [Float]) throws {
        try locked { try inner.backward(batch, temperature: temperature, gradLogprobs: gradLogprobs) }
    }
    func logprobsKeepingPass(_ batch: TokenBatch, temperature: Float) throws -> [Float]? {
        try locked { try inner.logprobsKeepingPass(batch, temperature: temperature) }
    }
    func backwardKeptPass(gradLogprobs: [Float]) throws {
        try locked { try inner.backwardKeptPass(gradLogprobs: gradLogprobs) }
    }
    func optimizerStep(_ step: OptimizerStep) throws -> Double {
        guardian.markChanging()
        return try locked { try inner.optimizerStep(step) }
    }
    func zeroGrad() throws { try locked { try inner.zeroGrad() } }
    func snapshotReference() throws { try locked { try inner.snapshotReference() } }
    func save(to path: String) throws { try locked { try inner.save(to: path) } }
    func load(from path: String) throws {
        guardian.markChanging()
        try locked { try inner.load(from: path) }
    }
}
