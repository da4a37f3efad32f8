import FuzzSupport
import Foundation
import PrismTrainer

/// Any bytes as a checkpoint manifest: a TrainerError naming the file is
/// fine, a crash is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzManifest(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let start = UnsafeRawPointer(data ?? UnsafePointer(bitPattern: 1)!)
    do {
        try RunDirectory.checkManifest(Data(bytes: start, count: count), step: 3, path: "manifest.json")
    } catch {
        precondition("\(error)".hasPrefix("manifest.json: "), "an error that does not name the file")
    }
    return 0
}

/// The entry point SwiftPM links as `main`.
@_cdecl("fuzz_manifest_main")
public func entry(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv, fuzzManifest)
}
