import CFuzzDriver

/// Runs libFuzzer over `body` with the process's arguments. Each target
/// calls it from the entry point SwiftPM links as `main` (`<target>_main`),
/// so the fuzz targets build as ordinary SwiftPM executables.
public func runFuzzer(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                      _ body: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32 {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, body)
}
