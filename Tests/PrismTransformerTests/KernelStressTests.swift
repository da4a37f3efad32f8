import Foundation
import PrismTestSupport
import Testing

/// The kernels' shared thread pool under contention, asleep and across
/// threads that come and go, and the GEMM's fused forms: C fixtures
/// (Tests/Fixtures) built with the kernels' sources, some under a
/// sanitizer, each run as a separate process.
@Suite struct KernelStressTests {
    static let kernels = TestSupport.packageRoot.appendingPathComponent("Plugins/Transformer/Kernels").path
    static var sources: [String] {
        [TestSupport.fixture("kernel_stress.c"), "\(kernels)/gemm.c", "\(kernels)/model.c"]
    }
    static let includes = ["-D_GNU_SOURCE", "-I", "\(kernels)/include", "-I", kernels]

    /// A fixture built with the kernels' `sources` under gcc's `sanitizer`
    /// (the Swift toolchain's clang lacks the standalone runtimes), run with
    /// `arguments`: status, output and the sanitizer's report on stderr.
    /// Multiversioned loops are off: TSan cannot run ifunc resolvers.
    static func runSanitized(_ fixture: String, with sources: [String], sanitizer: String, _ arguments: [String],
                             environment: [String: String]) throws -> TestSupport.ProcessResult {
        let name = (fixture as NSString).deletingPathExtension + "_" + sanitizer
        let program = try TestSupport.compileProgram(
            [TestSupport.fixture(fixture)] + sources.map { "\(kernels)/\($0)" }, name: name, compiler: "gcc",
            flags: ["-std=c11", "-O1", "-g", "-fsanitize=\(sanitizer)", "-DPK_NO_MULTIVERSION", "-Wall", "-Wextra", "-Werror"]
                + includes,
            in: try TestSupport.temporaryDirectory(name))
        return try TestSupport.run(program, arguments, environment: environment)
    }

    /// Two threads share the pool while two more burn the CPU. Before the
    /// pool tagged task claims with the job's epoch, a worker waking late for
    /// a finished job could run a task of the next job a second time; this
    /// failed in 5 of 6 runs of 400 iterations.
    @Test func twoThreadsUnderLoadAgreeWithSerialResults() throws {
        let dir = try TestSupport.temporaryDirectory("kernel-stress")
        let program = try TestSupport.compileProgram(
            Self.sources, name: "kernel_stress", flags: ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror"] + Self.includes,
            in: dir)
        let result = try TestSupport.run(program, ["800", "2", "2"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("2 threads x 800 iterations agreed"))
    }

    /// ThreadSanitizer over the same program reports no data race.
    @Test func threadSanitizerFindsNoRace() throws {
        let result = try Self.runSanitized("kernel_stress.c", with: ["gemm.c", "model.c"], sanitizer: "thread", ["12", "2"],
                                           environment: ["TSAN_OPTIONS": "halt_on_error=1 exitcode=66"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(!result.stderr.contains("ThreadSanitizer"), "\(result.stderr)")
    }

    /// The pool's sleeping paths (Tests/Fixtures/pool_sleep.c): workers that
    /// fell asleep between jobs are woken by the next job, and a caller
    /// waiting for a worker's slow task is woken when it ends; every task
    /// runs once. Under ThreadSanitizer, as publishing and joining take no
    /// lock while both sides spin. Shown to fail without the job's wake-up
    /// broadcast ("no worker ran a task after any pause") and without the
    /// worker's (a hang ended by the fixture's alarm).
    @Test func sleepingWorkersAndCallerWakeForEveryJob() throws {
        let result = try Self.runSanitized("pool_sleep.c", with: ["gemm.c"], sanitizer: "thread", ["150"],
                                           environment: ["TSAN_OPTIONS": "halt_on_error=1 exitcode=66"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("150 rounds agreed"), "\(result.stdout)")
        #expect(!result.stderr.contains("ThreadSanitizer"), "\(result.stderr)")
    }

    /// The pool's background items (Tests/Fixtures/pool_background.c;
    /// backward runs its weight gradients as such items) beside the jobs
    /// their poster runs meanwhile, under ThreadSanitizer: every item and
    /// task runs once, an item on a worker sees one thread and every item
    /// its poster's kernel choice, a product without scratch in an item
    /// counts in its poster's failures, and a post wakes a sleeping worker;
    /// and the tasks of a pk_parallel_solo job (decoding's row parts) alike:
    /// one thread each, their caller's kernels, their failures its own.
    /// Shown to fail without each of those four (the post's wake-up, the
    /// failures handed back, the kernel choice handed over, pk_threads() 1),
    /// and for the solo tasks without each of the last three.
    @Test func backgroundItemsRunOnceWithTheirPostersSettings() throws {
        let result = try Self.runSanitized("pool_background.c", with: ["gemm.c"], sanitizer: "thread", ["150"],
                                           environment: ["TSAN_OPTIONS": "halt_on_error=1 exitcode=66"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("150 rounds agreed"), "\(result.stdout)")
        #expect(!result.stderr.contains("ThreadSanitizer"), "\(result.stderr)")
    }

    /// Threads that each make a few kernel calls and exit, as in a program
    /// embedding Prism (Tests/Fixtures/scratch_threads.c), under
    /// AddressSanitizer: LeakSanitizer finds none of their packing and
    /// attention scratch left behind. Before the scratch was freed at thread
    /// exit, eight threads left 24 buffers (1.6 MB).
    @Test func exitedThreadsLeaveNoScratchBehind() throws {
        let result = try Self.runSanitized("scratch_threads.c", with: ["gemm.c", "model.c"], sanitizer: "address", ["8"],
                                           environment: ["ASAN_OPTIONS": "detect_leaks=1 exitcode=23"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("8 threads came and went, results agreed"), "\(result.stdout)")
        #expect(!result.stderr.contains("LeakSanitizer"), "\(result.stderr)")
    }

    /// The GEMM forms that fold a pass into the product (Tests/Fixtures/
    /// gemm_fused.c) give the bits of the passes they replace: the weight
    /// gradients' column sums taken while B is packed, the residual added
    /// in place of a copy, and the product times another matrix (GELU's
    /// slope) as it is stored. Row and column splits, edge panels, one
    /// task, K = 0; 1 and 2 threads; every kernel set. Shown to fail when
    /// every task of a row split sums B, when the residual is added on
    /// every KC block, when the slope multiplies every KC block and when
    /// the AVX-512 tile's second 16 columns miss it.
    @Test func fusedGemmFormsGiveTheBitsOfSeparatePasses() throws {
        let dir = try TestSupport.temporaryDirectory("gemm-fused")
        let program = try TestSupport.compileProgram(
            [TestSupport.fixture("gemm_fused.c"), "\(Self.kernels)/gemm.c", "\(Self.kernels)/model.c"], name: "gemm_fused",
            flags: ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror"] + Self.includes, in: dir)
        let result = try TestSupport.run(program, [])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("fused forms agreed (30 checks)"), "\(result.stdout)")
    }

    /// A part of a decoding step's GELU gives each element the bits the
    /// whole step's pass would (Tests/Fixtures/gelu_part.c: gelu_part over
    /// splits at arbitrary elements, totals of one chunk and of eight,
    /// every kernel set), while the same parts run as passes of their own
    /// differ somewhere (the data tells the forms apart). Shown to fail
    /// with a chunk's portable tail taken as vector elements and with the
    /// vector elements that fill no 8 at a part's end left to the
    /// portable form.
    @Test func geluPartsGiveTheWholePassesBits() throws {
        let dir = try TestSupport.temporaryDirectory("gelu-part")
        let program = try TestSupport.compileProgram(
            [TestSupport.fixture("gelu_part.c"), "\(Self.kernels)/gemm.c"], name: "gelu_part",
            flags: ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror"] + Self.includes, in: dir)
        let result = try TestSupport.run(program, [])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("gelu parts agreed"), "\(result.stdout)")
    }
}
