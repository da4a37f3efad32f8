import FuzzSupport
import Foundation
import PrismTrainer

/// Any bytes as a YAML config: a ConfigError is fine, a crash is a bug. A
/// config that loads must render to YAML that loads again to the same values.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let start = UnsafeRawPointer(data ?? UnsafePointer(bitPattern: 1)!)
    let data = Data(bytes: start, count: count)
    guard let config = try? ConfigFile(data: data, source: "fuzz.yaml") else { return 0 }
    let again = try! ConfigFile(yaml: config.yaml, source: "rendered")
    for key in ConfigKey.all {
        precondition(again.value(key.path) == config.value(key.path) && again.pluginConfig(key.path) == config.pluginConfig(key.path),
                     "\(key.path) reads back differently from the rendered config")
    }
    return 0
}

/// The entry point SwiftPM links as `main`.
@_cdecl("fuzz_config_main")
public func entry(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv, fuzzConfig)
}
