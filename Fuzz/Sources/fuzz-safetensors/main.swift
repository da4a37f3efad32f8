import FuzzSupport
import PluginKit

/// Any bytes as a safetensors file: a SafetensorsError naming the file is
/// fine, a crash is a bug. Every tensor a file declares can be read out as
/// floats of its own shape.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let start = UnsafeRawPointer(data ?? UnsafePointer(bitPattern: 1)!)
    let bytes = [UInt8](UnsafeRawBufferPointer(start: start, count: count))
    guard let file = try? Safetensors.parse(bytes, path: "fuzz.safetensors") else { return 0 }
    for name in file.tensorNames {
        do {
            _ = try file.floats(name, shape: file.shape(of: name)!, file: "fuzz.safetensors")
        } catch {
            precondition(error.description.hasPrefix("fuzz.safetensors: "), "an error that does not name the file")
        }
    }
    return 0
}

/// The entry point SwiftPM links as `main`.
@_cdecl("fuzz_safetensors_main")
public func entry(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv, fuzzSafetensors)
}
