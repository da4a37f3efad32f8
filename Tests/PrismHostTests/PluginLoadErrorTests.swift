import Foundation
import PrismCore
import PrismHost
import PrismTestSupport
import Testing

/// Every way a plugin can be broken gets its own one-line error naming the
/// file, and the host stays alive to load the next plugin.
@Suite("Plugin load errors")
struct PluginLoadErrorTests {
    let directory: URL

    init() throws {
        directory = try TestSupport.temporaryDirectory("load-errors")
    }

    /// Builds the broken fixture with one -D flag.
    func broken(_ flag: String) throws -> String {
        try TestSupport.compilePlugin(
            [TestSupport.fixture("broken_plugin.c")], name: "broken_\(flag)", defines: [flag], in: directory)
    }

    /// Loads (and, when `interface` is given, instantiates and adapts) `path`
    /// and returns the error.
    func error(loading path: String, config: String = "{}", interface: PluginInterface? = nil) -> PluginError? {
        do {
            let library = try PluginLibrary.load(path)
            let instance = try library.instantiate(config: config)
            switch interface {
            case .reward?: _ = try instance.rewardFunction()
            case .feedback?: _ = try instance.feedbackGenerator()
            case .sampler?: _ = try instance.sampler()
            case .backend?: _ = try instance.computeBackend()
            case .strategy?: _ = try instance.groupStrategy()
            case nil: break
            }
            return nil
        } catch {
            return error
        }
    }

    /// The error, or a test failure when loading succeeded.
    func required(_ error: PluginError?) throws -> PluginError {
        guard let error else { throw LoadedWithoutError() }
        return error
    }

    struct LoadedWithoutError: Error {}

    /// After a failure the host must still load and use a good plugin.
    func hostStillWorks() throws {
        let good = try TestSupport.compilePlugin(
            [TestSupport.fixture("broken_plugin.c")], name: "good", in: directory)
        let scores = try PluginLibrary.load(good).instantiate().rewardFunction()
            .score([RewardSample(prompt: "p", completion: "abc", reference: "x")])
        #expect(scores == [RewardScore(reward: 3, correct: true)])
    }

    @Test func fileMissing() throws {
        let path = directory.appendingPathComponent("nope.so").path
        let error = try required(error(loading: path))
        #expect(error.code == .fileMissing)
        #expect(error.description == "\(path): no such file")
        try hostStillWorks()
    }

    @Test func notASharedObject() throws {
        let path = directory.appendingPathComponent("text.so").path
        try "this is not an ELF file".write(toFile: path, atomically: true, encoding: .utf8)
        let error = try required(error(loading: path))
        #expect(error.code == .notSharedObject)
        #expect(error.description.hasPrefix("\(path): not a loadable shared object ("))
        try hostStillWorks()
    }

    @Test func relativePathIsMadeAbsolute() throws {
        let error = try required(error(loading: "definitely/missing.so"))
        #expect(error.plugin.hasPrefix("/"))
        #expect(error.plugin.hasSuffix("/definitely/missing.so"))
    }

    @Test func noEntrySymbol() throws {
        let path = try broken("NO_ENTRY")
        let error = try required(error(loading: path))
        #expect(error.code == .noEntrySymbol)
        #expect(error.description == "\(path): does not export 'prism_get_plugin_entry'; is it a Prism plugin?")
        try hostStillWorks()
    }

    @Test func entryReturnsNull() throws {
        let path = try broken("ENTRY_NULL")
        let error = try required(error(loading: path))
        #expect(error.code == .entryReturnedNull)
        #expect(error.description == "\(path): prism_get_plugin_entry(1) returned NULL: the plugin cannot serve ABI 1")
        try hostStillWorks()
    }

    @Test func abiMajorMismatchNamesBothVersions() throws {
        let path = try broken("ABI_MAJOR_2")
        let error = try required(error(loading: path))
        #expect(error.code == .abiMismatch)
        #expect(error.description == "\(path): plugin ABI is 2.6 but this host speaks ABI 1.6 (majors must match)")  // the fixture keeps the header's minor
        try hostStillWorks()
    }

    @Test func entryStructTooSmall() throws {
        let path = try broken("TOO_SMALL")
        let error = try required(error(loading: path))
        #expect(error.code == .structTooSmall)
        #expect(error.description == "\(path): plugin entry declares struct_size 16, but ABI 1.0 needs at least 72 bytes")
        try hostStillWorks()
    }

    @Test func mandatoryFunctionMissing() throws {
        let path = try broken("NO_CREATE")
        let error = try required(error(loading: path))
        #expect(error.code == .missingFunction)
        #expect(error.description == "\(path): plugin entry has no function 'create' (NULL); it is mandatory in ABI 1")
        try hostStillWorks()
    }

    @Test func interfaceNotProvided() throws {
        let path = try broken("NO_REWARD")
        let error = try required(error(loading: path, interface: .reward))
        #expect(error.code == .interfaceNotProvided)
        #expect(error.description == "\(path): does not provide interface 'prism.reward/1' (it provides: )")
        try hostStillWorks()
    }

    @Test func createFailedCarriesLastError() throws {
        let path = try broken("CREATE_FAILS")
        let error = try required(error(loading: path, config: "{\"x\":1}"))
        #expect(error.code == .createFailed)
        #expect(error.description
            == "\(path): create failed with status 2 (config error): the fixture refuses every config")
        try hostStillWorks()
    }

    @Test func interfaceTableTooSmall() throws {
        let path = try broken("SMALL_TABLE")
        let error = try required(error(loading: path, interface: .reward))
        #expect(error.code == .structTooSmall)
        #expect(error.description.contains("prism.reward/1 table declares struct_size 4"))
        try hostStillWorks()
    }

    @Test func interfaceFunctionMissing() throws {
        let path = try broken("NULL_SCORE")
        let error = try required(error(loading: path, interface: .reward))
        #expect(error.code == .missingFunction)
        #expect(error.description == "\(path): prism.reward/1 table has no function 'score' (NULL); it is mandatory in ABI 1")
        try hostStillWorks()
    }

    @Test func invalidOutputNamesPluginAndCall() throws {
        let path = try broken("BAD_OUTPUT")
        let reward = try PluginLibrary.load(path).instantiate().rewardFunction()
        #expect {
            _ = try reward.score([RewardSample(prompt: "", completion: "a", reference: "b")])
        } throws: { error in
            (error as? PluginError)?.description
                == "org.prism.test.fixture: score returned reward inf for sample 0; expected a finite number or NaN"
        }
        try hostStillWorks()
    }
}
