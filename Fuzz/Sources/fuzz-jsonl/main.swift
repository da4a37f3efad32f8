import FuzzSupport
import Foundation
import PrismTrainer

/// Any bytes as a dataset: a DataError naming a line is fine, a crash is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONL(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let start = UnsafeRawPointer(data ?? UnsafePointer(bitPattern: 1)!)
    let data = Data(bytes: start, count: count)
    do {
        let lines = try JSONL.decodeNumbered(Example.self, data: data, file: "fuzz.jsonl")
        precondition(lines.map(\.line) == lines.map(\.line).sorted(), "line numbers out of order")
    } catch {
        precondition(error.line >= 0, "a negative line number")
    }
    return 0
}

/// The entry point SwiftPM links as `main`.
@_cdecl("fuzz_jsonl_main")
public func entry(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv, fuzzJSONL)
}
