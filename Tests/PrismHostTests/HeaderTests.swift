import PrismTestSupport
import Testing

/// The SDK header compiles cleanly as C11 and as C++17 with every warning an
/// error, with GCC (cc, c++) and with the Swift toolchain's clang, which also
/// checks the nullability annotations.
@Suite("SDK header")
struct HeaderTests {
    static let compilers: [(String, [String])] = [
        ("cc", ["-std=c11", "-x", "c"]),
        ("c++", ["-std=c++17", "-x", "c++"]),
        ("clang", ["-std=c11", "-x", "c"]),
        ("clang++", ["-std=c++17", "-x", "c++"]),
    ]

    @Test(arguments: compilers.map(\.0))
    func compilesWithWarningsAsErrors(_ compiler: String) throws {
        let language = Self.compilers.first { $0.0 == compiler }!.1
        let result = try TestSupport.run(
            "/usr/bin/env",
            [compiler] + language + ["-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only",
                                     "-I", TestSupport.sdkInclude,
                                     TestSupport.packageRoot.appendingPathComponent("SDK/abi_checks.c").path])
        #expect(result.status == 0, "\(compiler): \(result.stderr)")
    }
}
