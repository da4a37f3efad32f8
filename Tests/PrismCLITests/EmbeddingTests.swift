import Foundation
import PrismTestSupport
import Testing

/// The embedding API (SDK/include/prism/embed.h, libPrismEmbed.so) as its
/// users meet it: the header against the library, the C example, a C probe
/// that checks the library stays quiet and leaves signals alone, the Python
/// module's own tests, and the Swift example package.
@Suite("Embedding")
struct EmbeddingTests {
    let products = TestSupport.productsDirectory.path
    var library: String { products + "/libPrismEmbed.so" }
    var prism: String { products + "/prism" }
    let header = TestSupport.sdkInclude + "/prism/embed.h"

    /// The functions the header declares (each line marked PRISM_EMBED_API).
    func declared() throws -> [String] {
        let text = try String(contentsOfFile: header, encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: #"(?m)^PRISM_EMBED_API\b[^;(]*?\b(prism_\w+)\s*\("#)
        return pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)).map {
            String(text[Range($0.range(at: 1), in: text)!])
        }
    }

    /// Tiny problems and a config for a run of `steps` steps, in a new directory.
    func tinyRun(_ name: String, steps: Int = 3, extra: String = "") throws -> (dir: URL, config: String) {
        let dir = try TestSupport.temporaryDirectory(name)
        let data = try TestSupport.run(prism, ["data", "arithmetic", "--count", "30", "--max-terms", "3",
                                               "--max-digits", "1", "--out", dir.path + "/train.jsonl"])
        #expect(data.status == 0, "\(data.stderr)")
        let config = """
            model:
              config: {vocab: "0123456789+=;#", d_model: 16, layers: 1, heads: 2, d_ff: 32, max_len: 32}
            data: {train: train.jsonl, eval: train.jsonl, eval_problems: 4}
            grpo: {group_size: 2, prompts_per_step: 2, max_new_tokens: 8}
            eval: {k: 0, max_new_tokens: 8}
            run: {steps: \(steps), eval_every: 0}
            \(extra)
            """
        try config.write(toFile: dir.path + "/tiny.yaml", atomically: true, encoding: .utf8)
        return (dir, dir.path + "/tiny.yaml")
    }

    /// The CI check of the hand-written header: the library exports exactly
    /// the functions it declares (no more, no fewer, nothing else named
    /// prism_*), each implemented with `@c @implementation` (so the compiler
    /// has checked its signature against the header); and the header
    /// compiles alone as strict C11 and as C++.
    @Test func headerDeclaresExactlyWhatTheLibraryExports() throws {
        let names = try declared()
        #expect(names.count >= 30 && Set(names).count == names.count)
        let nm = try TestSupport.run("/usr/bin/env", ["nm", "-D", "--defined-only", library])
        #expect(nm.status == 0, "\(nm.stderr)")
        let exported = Set(nm.stdout.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ")
            return fields.count == 3 && fields[2].hasPrefix("prism_") ? String(fields[2]) : nil
        })
        let onlyLibrary = exported.subtracting(names).sorted(), onlyHeader = Set(names).subtracting(exported).sorted()
        #expect(exported == Set(names), "only in the library: \(onlyLibrary); only in the header: \(onlyHeader)")
        let sources = try FileManager.default.contentsOfDirectory(
            atPath: TestSupport.packageRoot.appendingPathComponent("Sources/PrismEmbed").path)
            .filter { $0.hasSuffix(".swift") }
            .map { try String(contentsOfFile: TestSupport.packageRoot.appendingPathComponent("Sources/PrismEmbed/\($0)").path,
                              encoding: .utf8) }
            .joined()
        for name in names {
            #expect(sources.contains("@c @implementation\npublic func \(name)("), "\(name) is not checked against the header")
        }
        let dir = try TestSupport.temporaryDirectory("embed-header")
        let unit = dir.appendingPathComponent("only_header.c").path
        try "#include <prism/embed.h>\nint main(void) { return prism_embed_check_version(PRISM_EMBED_VERSION_NUMBER) ? 0 : 1; }\n"
            .write(toFile: unit, atomically: true, encoding: .utf8)
        for (compiler, flags) in [("cc", ["-std=c11", "-pedantic"]), ("c++", ["-x", "c++", "-std=c++17", "-pedantic"])] {
            let out = try TestSupport.run("/usr/bin/env", [compiler] + flags + [
                "-Wall", "-Wextra", "-Werror", "-I", TestSupport.sdkInclude, unit, "-L", products, "-lPrismEmbed",
                "-Wl,-rpath," + products, "-o", dir.appendingPathComponent("only_header_\(compiler)").path,
            ])
            #expect(out.status == 0, "\(compiler): \(out.stderr)")
            let run = try TestSupport.run(dir.appendingPathComponent("only_header_\(compiler)").path, [])
            #expect(run.status == 0, "the library refused the header's version")
        }
    }

    /// Examples/C/train.c, built with cc against the header and the library,
    /// trains a short run and prints each step's metrics.
    @Test func cExampleTrainsAndPrintsMetrics() throws {
        let (dir, config) = try tinyRun("embed-c")
        let program = try TestSupport.compileProgram(
            [TestSupport.packageRoot.appendingPathComponent("Examples/C/train.c").path, library], name: "prism-train",
            flags: ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", TestSupport.sdkInclude,
                    "-Wl,-rpath," + products], in: dir)
        let run = try TestSupport.run(program, [config, dir.path + "/run", "seed=5", "grpo.group_size=4"])
        #expect(run.status == 0, "\(run.stderr)")
        let steps = run.stdout.split(separator: "\n").filter { $0.hasPrefix("step ") }
        #expect(steps.count == 3, "\(run.stdout)")
        for (i, line) in steps.enumerated() {
            let json = line.drop { $0 != "{" }
            let metrics = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            #expect(metrics?["step"] as? Int == i + 1 && metrics?["reward"] != nil)
        }
        #expect(run.stdout.contains("evaluation: {\"accuracy\":"))
        #expect(run.stdout.contains("trained 3 steps (run at step 3, finished 1)"))
        #expect(run.stderr.contains("step 3/3"))  // the log callback's lines
        // The override reached the run: its config.yaml says group_size 4.
        let written = try String(contentsOfFile: dir.path + "/run/config.yaml", encoding: .utf8)
        #expect(written.contains("group_size: 4"))
        // An error is one line from the library, and the exit status 1.
        let bad = try TestSupport.run(program, [config, dir.path + "/run2", "grpo.group_sise=4"])
        #expect(bad.status == 1)
        #expect(bad.stderr.hasPrefix("override: --set: grpo.group_sise: unknown key"), "\(bad.stderr)")
    }

    /// Tests/Fixtures/embed_probe.c dlopens the library and uses most of it
    /// without a log callback: nothing reaches stdout or stderr, no signal
    /// disposition changes, and each error comes back as an error object
    /// holding the message `prism train` prints.
    @Test func libraryStaysQuietLeavesSignalsAloneAndReturnsTheCLIsErrors() throws {
        let functions = try TestSupport.temporaryDirectory("embed-probe-functions")
        let functionLibrary = try TestSupport.compileProgram(
            [TestSupport.fixture("functions.c")], name: "libfunctions.so",
            flags: ["-std=c11", "-shared", "-fPIC"], in: functions)
        let (dir, config) = try tinyRun("embed-probe", extra: """
            strategy: {name: sgpo}
            judge:
              function: {library: \(functionLibrary), symbol: chain_judge, signature: "i(s)", separator: ";"}
            """)
        let bad = dir.path + "/bad-plugin.yaml"
        try "reward: {config: {verify: nonsense}}\ndata: {train: train.jsonl}\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let probe = try TestSupport.compileProgram(
            [TestSupport.fixture("embed_probe.c")], name: "embed-probe",
            flags: ["-std=c11", "-Wall", "-Wextra", "-Werror", "-I", TestSupport.sdkInclude, "-ldl"], in: dir)
        let report = dir.path + "/report.tsv"
        // Without SWIFT_BACKTRACE, which asks the Swift runtime to keep its crash handlers.
        let result = try TestSupport.run("/usr/bin/env", ["-u", "SWIFT_BACKTRACE", probe, library, config,
                                                          dir.path + "/run", report, bad])
        #expect(result.status == 0)
        #expect(result.stdout.isEmpty, "the library wrote to stdout: \(result.stdout)")
        #expect(result.stderr.isEmpty, "the library wrote to stderr: \(result.stderr)")
        var lines: [String: (status: Int, text: String)] = [:]
        for line in try String(contentsOfFile: report, encoding: .utf8).split(separator: "\n") {
            let fields = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            lines[String(fields[0])] = (Int(fields[1]) ?? -99, fields.count > 2 ? String(fields[2]) : "")
        }
        #expect(try String(contentsOfFile: report, encoding: .utf8).contains("signals\tunchanged\n"))
        #expect(lines["steps"]?.status == 0 && lines["steps"]?.text == "2 2")
        #expect(lines["evaluate"]?.text.contains("\"problems\":4") == true)
        #expect(lines["plugins"]?.text.contains("\"judge\":\"\(functionLibrary):chain_judge\"") == true)
        #expect(lines["cancelled-steps 0"]?.status == 6)  // a cancel before the call stops it at once
        #expect(lines["score"]?.text == "1 1 0 0")
        #expect(lines["assess"]?.text == #"{"disposition":"keep","first_error_spans":[null,[0,5]],"first_errors":[null,0],"#
            + #""report":{"cache_hits":0,"completion_tokens":0,"prompt_tokens":0,"requests":0,"retries":0},"scores":[1,0]}"#)
        #expect(lines["null-config"]?.status == 1)

        // The same three mistakes through `prism train`: the same messages.
        let invalid = dir.path + "/inline.yaml"
        try "grpo: {group_sise: 4}\n".write(toFile: invalid, atomically: true, encoding: .utf8)
        let cliInvalid = try TestSupport.run(prism, ["train", invalid, "--run", dir.path + "/cli1"])
        #expect(lines["invalid-config"]?.status == 2)
        #expect(cliInvalid.stderr == "error: \(invalid): " + (lines["invalid-config"]?.text.dropFirst("inline.yaml: ".count) ?? "") + "\n")
        let cliMissing = try TestSupport.run(prism, ["train", config, "--set", "model.plugin=PrismNoSuchPlugin",
                                                     "--run", dir.path + "/cli2"])
        #expect(lines["missing-plugin"]?.status == 4)
        let missing = lines["missing-plugin"]?.text ?? "?"
        #expect(cliMissing.stderr.hasPrefix("error: " + missing.prefix { $0 != "(" }), "\(cliMissing.stderr) vs \(missing)")
        let cliFailing = try TestSupport.run(prism, ["train", bad, "--run", dir.path + "/cli3"])
        #expect(lines["failing-plugin"]?.status == 4)
        #expect(cliFailing.stderr == "error: \(lines["failing-plugin"]?.text ?? "?")\n")
    }

    /// Examples/Python: the ctypes module's own unittest suite, from python3.
    @Test func pythonModuleRunsItsTests() throws {
        let result = try TestSupport.run("/usr/bin/env", [
            "python3", "-m", "unittest", "discover", "-s", TestSupport.packageRoot.appendingPathComponent("Examples/Python").path, "-v",
        ], environment: ["PRISM_EMBED_LIBRARY": library, "PYTHONDONTWRITEBYTECODE": "1"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("Ran 5 tests"), "\(result.stderr)")
        for name in ["test_short_run", "test_cancel_from_another_thread_stops_within_one_step",
                     "test_errors_keep_the_process_alive", "test_reward_and_judge_the_config_names",
                     "test_a_failing_step_is_an_error_and_the_run_keeps_its_checkpoint"] {
            #expect(result.stderr.contains("\(name) (test_prism_embed.EmbeddingTest.\(name)) ... ok"), "\(name)")
        }
    }

    /// Examples/Swift: a package that depends on Prism by path and uses its
    /// library products, built with `swift build` and run.
    @Test func swiftExamplePackageBuildsAndTrains() throws {
        let package = TestSupport.packageRoot.appendingPathComponent("Examples/Swift").path
        let build = try TestSupport.run("/usr/bin/env", ["swift", "build", "--package-path", package])
        #expect(build.status == 0, "\(build.stdout.suffix(3000)) \(build.stderr.suffix(3000))")
        let dir = try TestSupport.temporaryDirectory("embed-swift")
        let run = try TestSupport.run(package + "/.build/debug/prism-swift-example", [dir.path, "seed=2"],
                                      environment: ["PRISM_PLUGIN_PATH": products])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("step 3: reward"), "\(run.stdout)")
        #expect(run.stdout.contains("trained steps 1...3"))
        #expect(run.stdout.contains("rewards [1.0, 0.0], correct [true, false]"))
        #expect(run.stdout.contains("plugin org.prism.transformer"))
        #expect(FileManager.default.fileExists(atPath: dir.path + "/run/checkpoints/step-000003"))
    }
}
