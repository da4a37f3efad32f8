import Foundation
import PrismHost
import PrismIsolation

// prism-plugin-runner: one plugin in its own process, so that a plugin that
// crashes or hangs takes down only this process. Started by the host; not
// meant to be run by hand.
//
//   prism-plugin-runner serve                 answer calls on fds 3 and 4
//   prism-plugin-runner inspect PATH [CONFIG] print the plugin's metadata as one JSON line
//   prism-plugin-runner check PATH CONFIG N   run the conformance suite, one line per check

let arguments = CommandLine.arguments
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

switch arguments.dropFirst().first {
case "serve":
    exit(RunnerServer.serve())
case "inspect" where arguments.count >= 3:
    do {
        let library = try PluginLibrary.load(arguments[2])
        var object: [String: Any] = ["id": library.id, "name": library.name, "version": library.version,
                                     "abi": "\(library.abiMajor).\(library.abiMinor)", "description": library.summary,
                                     "path": library.path]
        if arguments.count >= 4 {
            object["interfaces"] = try library.instantiate(config: arguments[3]).interfaces
        }
        say(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        exit(0)
    } catch let error as PluginError {
        say(String(decoding: try! JSONSerialization.data(withJSONObject: ["error": "\(error)", "code": error.code.name],
                                                         options: [.sortedKeys]), as: UTF8.self))
        exit(2)
    } catch {
        say(#"{"error": "unexpected failure"}"#)
        exit(2)
    }
case "check" where arguments.count >= 5:
    var failed = false
    ConformanceSuite(path: arguments[2], config: arguments[3], callCount: Int(arguments[4]) ?? 2000).run { result in
        if !result.passed { failed = true }
        say("\(result.passed ? "PASS" : "FAIL")\t\(result.name)\t\(result.detail)")
    }
    exit(failed ? 1 : 0)
default:
    FileHandle.standardError.write(Data("prism-plugin-runner: started by prism for plugins with isolation: process; not run by hand\n".utf8))
    exit(64)
}
