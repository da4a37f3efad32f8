import PrismCore

/// The GRPO training loop lives here (online and offline), with SFT, eval,
/// datasets, checkpoints and metric sinks. It talks to plugins only through
/// the PrismCore protocols, so it is tested with the in-memory fakes of
/// PrismTestSupport. The loop itself arrives with the trainer issue; today
/// this module holds the pieces the CLI already needs.
public enum PrismTrainer {
    /// The version of the Prism runtime.
    public static let version = "0.1.0"
}
