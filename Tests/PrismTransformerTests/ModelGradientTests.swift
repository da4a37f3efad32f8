import CPrismKernels
import Foundation
import PrismCore
import Testing

/// The C compute core directly: GEMM against a naive product, every
/// parameter gradient against finite differences, and KV-cache decoding
/// against a full forward pass.
@Suite("Transformer compute core")
struct ModelGradientTests {
    /// A small model with N(0, std) weights from `seed`.
    static func model(_ dims: pk_dims, seed: UInt64, std: Float = 0.3) -> OpaquePointer {
        let model = pk_model_new(dims)!
        let count = Int(pk_make_layout(dims).total)
        var rng = RandomState(seed: seed)
        let params = pk_params(model)!
        for i in 0..<count { params[i] = Float((rng.uniform() - 0.5) * 2 * Double(std) * 1.7) }
        return model
    }

    /// A batch of `rows` sequences of `stride` tokens below `vocab` and a
    /// gradient for each log-prob in [-1, 1), both from `seed`.
    static func batch(vocab: Int32, rows: Int, stride: Int, seed: UInt64) -> (tokens: [Int32], grad: [Float]) {
        var rng = RandomState(seed: seed)
        let tokens = (0..<(rows * stride)).map { _ in Int32(rng.next() % UInt64(vocab)) }
        return (tokens, (0..<(rows * stride)).map { _ in Float(rng.uniform() * 2 - 1) })
    }

    /// `count` values uniform in [-0.5, 0.5) from `rng`.
    static func uniforms(_ count: Int, _ rng: inout RandomState) -> [Float] {
        (0..<count).map { _ in Float(rng.uniform() - 0.5) }
    }

    /// One batch through pk_logprobs + pk_backward and through the kept pass
    /// (pk_logprobs_keep + pk_backward_kept), the gradients zeroed before
    /// each: both passes' log-probs and gradients.
    static func bothPasses(_ model: OpaquePointer, _ dims: pk_dims, tokens: [Int32], lengths: [UInt32], stride: Int,
                           temperature: Float, grad: [Float])
        -> (logprobs: [Float], grads: [Float], kept: [Float], keptGrads: [Float]) {
        let (rows, count) = (lengths.count, Int(pk_make_layout(dims).total))
        var logprobs = [Float](repeating: 1, count: rows * stride), kept = logprobs
        func gradients() -> [Float] { Array(UnsafeBufferPointer(start: pk_grads(model)!, count: count)) }
        pk_grads(model)!.update(repeating: 0, count: count)
        #expect(pk_logprobs(model, 0, tokens, lengths, Int32(rows), Int32(stride), temperature, &logprobs) == 0)
        #expect(pk_backward(model, tokens, lengths, Int32(rows), Int32(stride), temperature, grad) == 0)
        let grads = gradients()
        pk_grads(model)!.update(repeating: 0, count: count)
        #expect(pk_logprobs_keep(model, tokens, lengths, Int32(rows), Int32(stride), temperature, &kept) == 0)
        #expect(pk_backward_kept(model, grad) == 0)
        return (logprobs, grads, kept, gradients())
    }

    /// One GEMM's operands: op(A) m x k, op(B) k x n (transposed in storage
    /// when ta / tb is 1), a bias [n] and a starting C [m][n].
    struct Product {
        let m, n, k, ta, tb: Int
        let a, b, bias, start: [Float]

        /// C = op(A)·op(B) + beta·start + bias by pk_gemm_bias, and the same
        /// by pk_gemm_packed from B packed by pk_pack_b.
        func directAndPacked(beta: Float, bias: [Float]?) -> (direct: [Float], packed: [Float]) {
            let (lda, ldb) = (Int32(ta == 1 ? m : k), Int32(tb == 1 ? k : n))
            var direct = start, packed = start
            pk_gemm_bias(Int32(ta), Int32(tb), Int32(m), Int32(n), Int32(k), a, lda, b, ldb, beta, &direct,
                         Int32(n), bias)
            var panels = [Float](repeating: .nan, count: pk_packed_b_floats(Int32(k), Int32(n)))
            pk_pack_b(Int32(tb), Int32(k), Int32(n), b, ldb, &panels)
            pk_gemm_packed(Int32(ta), Int32(m), Int32(n), Int32(k), a, lda, panels, beta, &packed, Int32(n), bias)
            return (direct, packed)
        }
    }

    /// Every shape (m, n, k) with both transposes, its operands drawn from
    /// `seed`.
    static func eachProduct(_ shapes: [(Int, Int, Int)], seed: UInt64, _ body: (Product) -> Void) {
        var rng = RandomState(seed: seed)
        for (m, n, k) in shapes {
            for ta in [0, 1] {
                for tb in [0, 1] {
                    body(Product(m: m, n: n, k: k, ta: ta, tb: tb, a: uniforms(m * k, &rng), b: uniforms(k * n, &rng),
                                 bias: uniforms(n, &rng), start: uniforms(m * n, &rng)))
                }
            }
        }
    }

    /// (name, offset, count) of every tensor in the C layout.
    static func tensors(_ dims: pk_dims) -> [(String, Int, Int)] {
        let lay = pk_make_layout(dims)
        let D = Int(dims.d_model), F = Int(dims.d_ff), V = Int(dims.vocab), T = Int(dims.max_len)
        var out = [("wte", Int(lay.wte), V * D), ("wpe", Int(lay.wpe), T * D)]
        withUnsafeBytes(of: lay.layer) { raw in
            let layers = raw.bindMemory(to: pk_layer_offsets.self)
            for l in 0..<Int(dims.layers) {
                let o = layers[l]
                out += [("h.\(l).ln_1.weight", Int(o.ln1_w), D), ("h.\(l).ln_1.bias", Int(o.ln1_b), D),
                        ("h.\(l).attn.qkv.weight", Int(o.qkv_w), 3 * D * D), ("h.\(l).attn.qkv.bias", Int(o.qkv_b), 3 * D),
                        ("h.\(l).attn.proj.weight", Int(o.proj_w), D * D), ("h.\(l).attn.proj.bias", Int(o.proj_b), D),
                        ("h.\(l).ln_2.weight", Int(o.ln2_w), D), ("h.\(l).ln_2.bias", Int(o.ln2_b), D),
                        ("h.\(l).mlp.fc.weight", Int(o.fc_w), D * F), ("h.\(l).mlp.fc.bias", Int(o.fc_b), F),
                        ("h.\(l).mlp.proj.weight", Int(o.fcp_w), F * D), ("h.\(l).mlp.proj.bias", Int(o.fcp_b), D)]
            }
        }
        out += [("ln_f.weight", Int(lay.lnf_w), D), ("ln_f.bias", Int(lay.lnf_b), D), ("lm_head.weight", Int(lay.head_w), D * V)]
        #expect(out.map(\.2).reduce(0, +) == Int(lay.total))
        return out
    }

    @Test(arguments: [false, true])
    func gemmMatchesNaiveProduct(portable: Bool) {
        // Per thread: tests running beside this one keep their kernels.
        let previous = pk_force_portable(portable ? 1 : 0)
        defer { pk_force_portable(previous) }
        var rng = RandomState(seed: 3)
        // (20, 32, 40) reads B in place (whole 16-column panels, one MC
        // block of rows); (200, 32, 70) crosses few panels row by row.
        for (m, n, k) in [(1, 1, 1), (7, 19, 5), (64, 40, 130), (13, 33, 300), (300, 17, 9), (70, 45, 20),
                          (20, 32, 40), (200, 32, 70)] {
            for ta in [0, 1] {
                for tb in [0, 1] {
                    let a = Self.uniforms(m * k, &rng)
                    let b = Self.uniforms(k * n, &rng)
                    // With a bias on the transposed-B cases: the fused bias
                    // goes through the same edge stores (rows past a 6-row
                    // group, masked columns past a 16-column panel).
                    let bias: [Float]? = tb == 1 ? Self.uniforms(n, &rng) : nil
                    var c = [Float](repeating: 1, count: m * n)
                    pk_gemm_bias(Int32(ta), Int32(tb), Int32(m), Int32(n), Int32(k), a, Int32(ta == 1 ? m : k), b,
                                 Int32(tb == 1 ? k : n), 0.5, &c, Int32(n), bias)
                    var worst: Float = 0
                    for i in 0..<m {
                        for j in 0..<n {
                            var sum: Float = 0.5 + (bias?[j] ?? 0)
                            for p in 0..<k {
                                sum += (ta == 1 ? a[p * m + i] : a[i * k + p]) * (tb == 1 ? b[j * k + p] : b[p * n + j])
                            }
                            worst = max(worst, abs(sum - c[i * n + j]))
                        }
                    }
                    #expect(worst < 1e-4, "\(m)x\(n)x\(k) ta \(ta) tb \(tb) portable \(portable): \(worst)")
                }
            }
        }
    }

    /// A weight gradient's product (C = Aᵀ·B + beta·C over several KC
    /// blocks), which more than one thread splits along K, gives one
    /// thread's bits at 2 and 3 threads: its later blocks' products kept
    /// apart and added to C in block order. Every kernel set, betas 0, 1 and
    /// 0.5, padded row strides, K not a multiple of the block. Shown to fail
    /// when the partials are added last block first.
    @Test func aProductSplitAlongKGivesOneThreadsBits() {
        let (threads, avx2, portable) = (pk_threads(), pk_force_avx2(0), pk_force_portable(0))
        defer { pk_set_threads(threads); pk_force_avx2(avx2); pk_force_portable(portable) }
        var rng = RandomState(seed: 31)
        for kernels in ["widest", "avx2", "portable"] {
            pk_force_avx2(kernels == "avx2" ? 1 : 0)
            pk_force_portable(kernels == "portable" ? 1 : 0)
            for (m, n, k) in [(40, 48, 700), (13, 33, 513), (64, 80, 1030), (128, 32, 1024), (7, 16, 300)] {
                let (lda, ldb, ldc) = (m + 1, n + 3, n + 2)
                let a = Self.uniforms(k * lda, &rng), b = Self.uniforms(k * ldb, &rng)
                let start = Self.uniforms(m * ldc, &rng)
                for beta: Float in [0, 1, 0.5] {
                    let results = [1, 2, 3].map { count -> [UInt32] in
                        pk_set_threads(Int32(count))
                        var c = start
                        pk_gemm(1, 0, Int32(m), Int32(n), Int32(k), a, Int32(lda), b, Int32(ldb), beta, &c, Int32(ldc))
                        return c.map(\.bitPattern)
                    }
                    for (i, count) in [2, 3].enumerated() {
                        let differing = zip(results[i + 1], results[0]).filter { $0 != $1 }.count
                        #expect(differing == 0, "\(m)x\(n)x\(k) beta \(beta) \(kernels), \(count) threads: \(differing) differ")
                    }
                }
            }
        }
    }

    /// A product split by rows, whose B each thread packs once per call
    /// (then the rows go in several tasks a thread, taken as the threads come
    /// free), gives one thread's bits at 2 and 3 threads: transposed and
    /// untransposed operands, ragged panels, K across KC blocks, with bias and
    /// beta. The same B buffer given new values between two calls is packed
    /// again: a thread's packed B belongs to one call. Shown to fail when a
    /// thread keeps its packed B from an earlier call.
    @Test func aRowSplitPacksBOncePerThreadAndCall() {
        let threads = pk_threads()
        defer { pk_set_threads(threads) }
        var rng = RandomState(seed: 47)
        for (m, n, k) in [(300, 48, 128), (1000, 40, 300), (200, 128, 600), (97, 48, 64)] {
            for ta in [0, 1] {
                for tb in [0, 1] {
                    let (lda, ldb) = (ta == 1 ? m : k, tb == 1 ? k : n)
                    let a = Self.uniforms(m * k, &rng), bias = Self.uniforms(n, &rng)
                    let start = Self.uniforms(m * n, &rng)
                    let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: k * n)
                    defer { b.deallocate() }
                    let product = { (count: Int32) -> [UInt32] in
                        pk_set_threads(count)
                        var c = start
                        pk_gemm_bias(Int32(ta), Int32(tb), Int32(m), Int32(n), Int32(k), a, Int32(lda),
                                     b.baseAddress, Int32(ldb), 0.5, &c, Int32(n), bias)
                        return c.map(\.bitPattern)
                    }
                    for round in 0..<2 {
                        for i in 0..<(k * n) { b[i] = Float(rng.uniform() - 0.5) }
                        let one = product(1)
                        for count: Int32 in [2, 3] {
                            // Twice: the second call finds each thread's buffer holding the first's B.
                            for call in 0..<2 {
                                let differing = zip(product(count), one).filter { $0 != $1 }.count
                                #expect(differing == 0, """
                                    \(m)x\(n)x\(k) ta \(ta) tb \(tb) round \(round), \(count) threads, \
                                    call \(call): \(differing) differ
                                    """)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Operands read where they lie touch nothing past their last element:
    /// A ends where an unreadable page begins, so a read one row too far
    /// stops the test. Untransposed, A's last row group, when short, is read
    /// in place (the AVX-512 kernel runs exactly its rows: decoding's 64 rows
    /// leave 4, M = 128 eight in a pair of groups); transposed (a weight
    /// gradient's Aᵀ), A is read in place when it has more rows than B has
    /// columns (m > n), its group's rows MR adjacent floats of each of A's
    /// rows, and B (also against such a page) in place otherwise. The
    /// products still equal the naive ones, direct and with B packed.
    @Test func operandsReadInPlaceReadNothingPastTheirEnd() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var regions: [(UnsafeMutableRawPointer, Int)] = []
        defer { for (region, bytes) in regions { munmap(region, bytes) } }
        /// `count` floats ending where an unreadable page begins.
        func guarded(_ count: Int) throws -> UnsafeMutablePointer<Float> {
            let bytes = (count * MemoryLayout<Float>.stride + page - 1) / page * page
            let region = try #require(mmap(nil, bytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
            try #require(region != MAP_FAILED)
            regions.append((region, bytes + page))
            #expect(mprotect(region + bytes, page, PROT_NONE) == 0)
            return (region + bytes).assumingMemoryBound(to: Float.self) - count
        }
        let shapes = [(64, 32, 128), (61, 48, 40), (63, 128, 130), (65, 17, 9), (128, 40, 300), (5, 32, 16),
                      (128, 384, 300), (200, 32, 70), (130, 64, 260), (7, 48, 20)]
        for (m, n, k) in shapes {
            for ta in [0, 1] {
                let a = try guarded(m * k), b = try guarded(k * n)
                var rng = RandomState(seed: UInt64(m * 1000 + n + ta))
                for i in 0..<(m * k) { a[i] = Float(rng.uniform() * 2 - 1) }
                for i in 0..<(k * n) { b[i] = Float(rng.uniform() * 2 - 1) }
                let lda = Int32(ta == 1 ? m : k)
                var direct = [Float](repeating: 0, count: m * n), packed = direct
                pk_gemm(Int32(ta), 0, Int32(m), Int32(n), Int32(k), a, lda, b, Int32(n), 0, &direct, Int32(n))
                var panels = [Float](repeating: .nan, count: pk_packed_b_floats(Int32(k), Int32(n)))
                pk_pack_b(0, Int32(k), Int32(n), b, Int32(n), &panels)
                pk_gemm_packed(Int32(ta), Int32(m), Int32(n), Int32(k), a, lda, panels, 0, &packed, Int32(n), nil)
                var worst: Float = 0
                for i in 0..<m {
                    for j in 0..<n {
                        var sum: Float = 0
                        for p in 0..<k { sum += (ta == 1 ? a[p * m + i] : a[i * k + p]) * b[p * n + j] }
                        worst = max(worst, abs(sum - direct[i * n + j]), abs(sum - packed[i * n + j]))
                    }
                }
                #expect(worst < 1e-4, "\(m)x\(n)x\(k) ta \(ta): \(worst)")
            }
        }
    }

    /// A B packed once (decoding's weights) gives pk_gemm_bias's product bit
    /// for bit: the same panels in the same order, whichever way B is
    /// stored, across KC blocks (k 300) and in-place shapes (n 32).
    @Test(arguments: [false, true])
    func prepackedBGivesTheSameProduct(portable: Bool) {
        let previous = pk_force_portable(portable ? 1 : 0)
        defer { pk_force_portable(previous) }
        Self.eachProduct([(64, 48, 300), (5, 17, 7), (64, 32, 128), (130, 384, 40)], seed: 4) { p in
            let (direct, packed) = p.directAndPacked(beta: 1, bias: p.bias)
            let differing = zip(packed, direct).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(differing == 0, "\(p.m)x\(p.n)x\(p.k) ta \(p.ta) tb \(p.tb) portable \(portable): \(differing) differ")
        }
    }

    /// The AVX-512 micro-kernel (12 x 32 tiles from pairs of row groups and
    /// panels) gives the AVX2 kernel's products bit for bit, so a run's
    /// results do not depend on which of the two the CPU has: GEMMs with
    /// every edge (rows 1..13 around a pair of 6-row groups, a lone group
    /// of 1, 2, 3 or 4 rows (25, 14, 15, 64 rows), odd panel
    /// counts, masked columns), both transposes, beta, bias and packed B;
    /// then a model's log-probs, gradients and decoding logits. On a CPU
    /// without AVX-512 both sides run AVX2 and this only checks that
    /// pk_force_avx2 changes nothing; the test prints which it compared.
    @Test func avx512GivesTheAVX2Bits() {
        let previous = pk_force_avx2(0)
        defer { pk_force_avx2(previous) }
        print("AVX-512 against AVX2: this CPU runs \(String(cString: pk_kernels_name()))")
        func both<T: Equatable>(_ run: () -> T) -> (T, T) {
            pk_force_avx2(1)
            let narrow = run()
            pk_force_avx2(0)
            return (narrow, run())
        }
        // Beta 0.5 and no bias when B is untransposed; beta 1 and a bias
        // otherwise.
        Self.eachProduct([(13, 33, 300), (12, 32, 7), (7, 48, 260), (1, 17, 5), (130, 384, 40), (64, 80, 513),
                          (200, 32, 70), (25, 100, 9), (15, 40, 20), (14, 33, 20)], seed: 12) { p in
            let (narrow, wide) = both { () -> [UInt32] in
                let (direct, packed) = p.directAndPacked(beta: p.tb == 1 ? 1 : 0.5, bias: p.tb == 1 ? p.bias : nil)
                return (direct + packed).map(\.bitPattern)
            }
            let differing = zip(narrow, wide).filter { $0 != $1 }.count
            #expect(differing == 0, "\(p.m)x\(p.n)x\(p.k) ta \(p.ta) tb \(p.tb): \(differing) differ")
        }
        var rng = RandomState(seed: 13)
        // Head sizes 24 (attention's 16- and 8-column tiles) and 32 (its
        // 32-column AVX-512 tile), score rows past 16 columns, and rows
        // sharing a prefix (their attention through gathered copies).
        for dModel: Int32 in [48, 64] {
            let dims = pk_dims(vocab: 37, d_model: dModel, layers: 2, heads: 2, d_ff: 100, max_len: 19)
            let model = Self.model(dims, seed: 6, std: 0.15)
            defer { pk_model_free(model) }
            let lengths: [UInt32] = [19, 13, 17, 8, 19, 2, 11]
            let rows = lengths.count, stride = 19, V = 37
            var tokens = (0..<(rows * stride)).map { _ in Int32(rng.next() % 37) }
            for r in [2, 4] { for t in 0..<5 { tokens[r * stride + t] = tokens[t] } } // a shared prefix
            let grad = (0..<(rows * stride)).map { _ in Float(rng.uniform() * 2 - 1) }
            let count = Int(pk_make_layout(dims).total)
            let (narrow, wide) = both { () -> [UInt32] in
                var logprobs = [Float](repeating: 0, count: rows * stride)
                _ = pk_logprobs(model, 0, tokens, lengths, Int32(rows), Int32(stride), 0.9, &logprobs)
                pk_grads(model)!.update(repeating: 0, count: count)
                _ = pk_backward(model, tokens, lengths, Int32(rows), Int32(stride), 0.9, grad)
                let grads = Array(UnsafeBufferPointer(start: pk_grads(model)!, count: count))
                var logits = [Float](repeating: 0, count: rows * V * 5)
                let prompts = lengths.map { min($0, 6) }
                _ = pk_decode_begin(model, tokens, prompts, Int32(rows), Int32(stride), &logits)
                for step in 1..<5 {
                    let next = (0..<rows).map { tokens[$0 * stride + Int(prompts[$0]) + step - 1] }
                    logits.withUnsafeMutableBufferPointer { out in
                        _ = pk_decode_step(model, next, out.baseAddress! + step * rows * V)
                    }
                }
                return (logprobs + grads + logits).map(\.bitPattern)
            }
            #expect(narrow.count == rows * stride + count + rows * V * 5)
            #expect(narrow.contains { $0 != 0 })
            let differing = zip(narrow, wide).filter { $0 != $1 }.count
            #expect(differing == 0, "model d_model \(dModel): \(differing) of \(narrow.count) values differ")
        }
    }

    /// Shapes that reach every attention path: head size 4 (the scalar
    /// loops), 8 (the AVX2 tiles, one 8-wide column block) and 24 (a 16-wide
    /// and an 8-wide block), lengths that are not multiples of the 4-row
    /// tile, and 19 positions (two 16-column score blocks).
    /// `shared`: rows after the first start with its first `shared` tokens
    /// (computed once: Decisions #59), the loss weighing every position.
    static let gradientShapes: [(dModel: Int32, heads: Int32, stride: Int, lengths: [UInt32], shared: Int)] = [
        (8, 2, 6, [6, 4, 5], 0), (16, 2, 6, [6, 3, 5], 0), (48, 2, 19, [19, 13, 17], 0), (16, 2, 9, [9, 7, 9, 5], 5),
    ]

    @Test(arguments: gradientShapes.indices)
    func everyParameterGradientMatchesFiniteDifferences(shape: Int) {
        let (dModel, heads, stride, lengths, shared) = Self.gradientShapes[shape]
        let dims = pk_dims(vocab: 7, d_model: dModel, layers: 2, heads: heads, d_ff: 2 * dModel, max_len: Int32(stride))
        let model = Self.model(dims, seed: 5, std: dModel > 16 ? 0.15 : 0.3)
        defer { pk_model_free(model) }
        let rows = lengths.count
        var rng = RandomState(seed: 9)
        var tokens = (0..<(rows * stride)).map { _ in Int32(rng.next() % 7) }
        for r in 1..<rows { for t in 0..<shared { tokens[r * stride + t] = tokens[t] } }
        let grad = (0..<(rows * stride)).map { _ in Float(rng.uniform() * 2 - 1) }
        func loss() -> Double {
            var out = [Float](repeating: 0, count: rows * stride)
            _ = pk_logprobs(model, 0, tokens, lengths, Int32(rows), Int32(stride), 0.9, &out)
            return zip(out, grad).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let count = Int(pk_make_layout(dims).total)
        pk_grads(model)!.update(repeating: 0, count: count)
        _ = pk_backward(model, tokens, lengths, Int32(rows), Int32(stride), 0.9, grad)
        let analytic = Array(UnsafeBufferPointer(start: pk_grads(model)!, count: count))
        let params = pk_params(model)!
        var report: [String] = []
        for (name, offset, size) in Self.tensors(dims) {
            // Directional derivative along a random unit direction in this tensor.
            var direction = (0..<size).map { _ in rng.uniform() - 0.5 }
            let norm = direction.map { $0 * $0 }.reduce(0, +).squareRoot()
            direction = direction.map { $0 / norm }
            let h = 1e-2
            func shifted(_ k: Double) -> Double {
                for i in 0..<size { params[offset + i] += Float(k * h * direction[i]) }
                defer { for i in 0..<size { params[offset + i] -= Float(k * h * direction[i]) } }
                return loss()
            }
            let numeric = (shifted(-2) - 8 * shifted(-1) + 8 * shifted(1) - shifted(2)) / (12 * h)
            let exact = (0..<size).map { Double(analytic[offset + $0]) * direction[$0] }.reduce(0, +)
            let error = abs(numeric - exact) / max(abs(numeric), abs(exact), 1e-2)
            report.append("\(name) \(error)")
            #expect(error < 2e-2, "d_model \(dModel) heads \(heads) \(name): analytic \(exact) numeric \(numeric)")
        }
        print("gradient check (d_model \(dModel), heads \(heads)), relative error per tensor:\n  "
            + report.joined(separator: "\n  "))
    }

    /// Only a sequence's own tokens are computed (Decisions #53): in a ragged
    /// batch each row's log-probs are those of the sequence run alone, bit for
    /// bit (causal attention; padding past a length is never a row), and
    /// positions past the length are 0. Head size 24 takes the AVX2 tiles,
    /// 19 positions two score blocks.
    @Test func raggedRowsGiveEachSequenceItsOwnLogprobs() {
        let dims = pk_dims(vocab: 7, d_model: 48, layers: 2, heads: 2, d_ff: 96, max_len: 19)
        let model = Self.model(dims, seed: 5, std: 0.15)
        defer { pk_model_free(model) }
        let stride = 19
        let lengths: [UInt32] = [19, 13, 17, 1]
        var rng = RandomState(seed: 4)
        let tokens = (0..<(lengths.count * stride)).map { _ in Int32(rng.next() % 7) }
        var batch = [Float](repeating: 1, count: tokens.count)
        #expect(pk_logprobs(model, 0, tokens, lengths, Int32(lengths.count), Int32(stride), 0.9, &batch) == 0)
        for (r, length) in lengths.enumerated() {
            let own = Array(tokens[(r * stride)..<(r * stride + Int(length))])
            var alone = [Float](repeating: 1, count: own.count)
            #expect(pk_logprobs(model, 0, own, [length], 1, Int32(length), 0.9, &alone) == 0)
            #expect(Array(batch[(r * stride)..<(r * stride + Int(length))]) == alone, "row \(r)")
            #expect(batch[(r * stride + Int(length))..<((r + 1) * stride)].allSatisfy { $0 == 0 }, "row \(r) past its length")
        }
    }

    /// A prefix shared by sequences of the batch is computed once (Decisions
    /// #59): the log-probs are those of every sequence computed whole, bit
    /// for bit, and the gradient theirs up to the order of its sums. The
    /// batch: groups whose prompts differ in length, a sequence identical to
    /// its group's first, one that is a prefix of it, one sharing more than
    /// the prompt, a one-token completion, a sequence alone, and the loss on
    /// prompt positions too (several sequences' terms at one row). Head size
    /// 16 takes the AVX2 tiles, and the portable loops.
    @Test(arguments: [false, true])
    func sharedPrefixesAreComputedOnceWithTheSameResults(portable: Bool) {
        let dims = pk_dims(vocab: 9, d_model: 32, layers: 2, heads: 2, d_ff: 64, max_len: 24)
        let model = Self.model(dims, seed: 21, std: 0.2)
        defer { pk_model_free(model) }
        pk_model_use_portable(model, portable ? 1 : 0)
        let stride = 24
        var rng = RandomState(seed: 8)
        var tokens: [Int32] = [], lengths: [UInt32] = []
        func add(_ sequence: [Int32]) {
            tokens += sequence + [Int32](repeating: 0, count: stride - sequence.count)
            lengths.append(UInt32(sequence.count))
        }
        func random(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(rng.next() % 9) } }
        for promptLength in [6, 11] {
            let prompt = random(promptLength), first = prompt + random(9)
            add(first)
            add(first)                                    // identical: no token of its own
            add(Array(first.prefix(promptLength + 2)))    // a prefix of the first
            add(Array(first.prefix(promptLength + 4)) + random(5))  // shares more than the prompt
            add(prompt + random(1))
            add(prompt + random(12))
        }
        add(random(17))
        let rows = lengths.count
        let grad = (0..<(rows * stride)).map { _ in Float(rng.uniform() * 2 - 1) }
        func run(share: Bool) -> (logprobs: [Float], grads: [Float], kept: [Float], keptGrads: [Float], rows: Int) {
            pk_model_share_prefixes(model, share ? 1 : 0)
            let r = Self.bothPasses(model, dims, tokens: tokens, lengths: lengths, stride: stride, temperature: 0.9,
                                    grad: grad)
            return (r.logprobs, r.grads, r.kept, r.keptGrads, pk_model_rows(model)) // the kept pass's rows: the same
        }
        let whole = run(share: false), shared = run(share: true)
        // The shared tokens are computed once: in each group at least the
        // identical sequence, the prefix, the 4 extra tokens and 4 prompts.
        #expect(whole.rows == Int(lengths.reduce(0, +)))
        #expect(whole.rows - shared.rows >= (15 + 8 + 10 + 6 + 6) + (20 + 13 + 15 + 11 + 11), "\(shared.rows) of \(whole.rows)")
        #expect(shared.logprobs == whole.logprobs)
        #expect(shared.kept == whole.kept && shared.keptGrads == shared.grads)
        let difference = zip(shared.grads, whole.grads).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
        let norm = whole.grads.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
        print("shared prefixes (portable \(portable)): gradient norm \(norm), relative difference \(difference / norm)")
        #expect(norm > 1 && difference / norm < 1e-5)
        // Each sequence's own log-probs, as it alone gives them.
        for r in [1, 3, 9] {
            let own = Array(tokens[(r * stride)..<(r * stride + Int(lengths[r]))])
            var alone = [Float](repeating: 1, count: own.count)
            #expect(pk_logprobs(model, 0, own, [lengths[r]], 1, Int32(own.count), 0.9, &alone) == 0)
            #expect(Array(shared.logprobs[(r * stride)..<(r * stride + own.count)]) == alone, "row \(r)")
        }
    }

    /// AdamW, chunked over the pool and on 8 lanes with AVX2, takes the
    /// plain Float formula's step on every parameter bit for bit (weight
    /// decay on the matrices and embeddings only; the second step clipped
    /// to half the gradient norm), on both kernels, and clears the gradient.
    @Test func adamWTakesTheFormulasStepOnEveryParameter() {
        let dims = pk_dims(vocab: 7, d_model: 36, layers: 2, heads: 2, d_ff: 72, max_len: 9)
        let count = Int(pk_make_layout(dims).total)
        // More than one chunk, and tensors whose sizes leave a tail past the 8-lane loop.
        #expect(count > 16384 && Self.tensors(dims).contains { $0.2 % 8 != 0 })
        var rng = RandomState(seed: 3)
        let grads = (0..<count).map { _ in Float(rng.uniform() * 2 - 1) }
        let norm = grads.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
        for portable in [false, true] {
            let model = Self.model(dims, seed: 4)
            defer { pk_model_free(model) }
            pk_model_use_portable(model, portable ? 1 : 0)
            var params = Array(UnsafeBufferPointer(start: pk_params(model)!, count: count))
            var m = [Float](repeating: 0, count: count), v = m
            for step in 1...2 {
                pk_grads(model)!.update(from: grads, count: count)
                let maxNorm = step == 2 ? norm / 2 : 0
                let reported = pk_adamw(model, 1e-2, 0.9, 0.999, 1e-8, 0.1, maxNorm)
                #expect(abs(reported - norm) <= 1e-12 * norm)
                let clip: Float = maxNorm > 0 && reported > maxNorm ? Float(maxNorm / reported) : 1
                let c1 = Float(1 - pow(0.9, Double(step))), c2 = Float(1 - pow(0.999, Double(step)))
                for (name, offset, size) in Self.tensors(dims) {
                    let decay: Float = name.contains("ln_") || name.hasSuffix(".bias") ? 0 : 0.1
                    for i in offset..<(offset + size) {
                        let g = grads[i] * clip
                        m[i] = Float(0.9) * m[i] + Float(1 - 0.9) * g
                        v[i] = Float(0.999) * v[i] + Float(1 - 0.999) * g * g
                        let update = (m[i] / c1) / ((v[i] / c2).squareRoot() + Float(1e-8)) + decay * params[i]
                        params[i] -= Float(1e-2) * update
                    }
                }
                let after = Array(UnsafeBufferPointer(start: pk_params(model)!, count: count))
                let differing = zip(after, params).filter { $0 != $1 }.count
                #expect(differing == 0, "portable \(portable) step \(step): \(differing) parameters differ")
                let moments = zip(UnsafeBufferPointer(start: pk_adam_m(model)!, count: count), m).filter { $0 != $1 }.count
                #expect(moments == 0, "portable \(portable) step \(step): \(moments) first moments differ")
                #expect(UnsafeBufferPointer(start: pk_grads(model)!, count: count).allSatisfy { $0 == 0 })
            }
        }
    }

    /// The kept pass (ABI 1.5) gives the log-probs and the gradient of a
    /// separate log-probs call and backward, bit for bit; any other pass
    /// discards it.
    @Test func theKeptPassEqualsLogprobsThenBackward() {
        let dims = pk_dims(vocab: 11, d_model: 16, layers: 2, heads: 2, d_ff: 32, max_len: 12)
        let model = Self.model(dims, seed: 13)
        defer { pk_model_free(model) }
        let rows = 3, stride = 12
        let (tokens, grad) = Self.batch(vocab: 11, rows: rows, stride: stride, seed: 4)
        let lengths: [UInt32] = [12, 7, 9]
        let both = Self.bothPasses(model, dims, tokens: tokens, lengths: lengths, stride: stride, temperature: 0.8,
                                   grad: grad)
        let separate = both.logprobs, separateGrad = both.grads
        var kept = both.kept
        #expect(kept == separate)
        #expect(both.keptGrads == separateGrad)
        #expect(separateGrad.contains { $0 != 0 })
        // Released after use; discarded by another forward pass.
        #expect(pk_backward_kept(model, grad) == -2)
        #expect(pk_logprobs_keep(model, tokens, lengths, Int32(rows), Int32(stride), 0.8, &kept) == 0)
        var other = separate
        #expect(pk_logprobs(model, 1, tokens, lengths, Int32(rows), Int32(stride), 0.8, &other) == 0)
        #expect(pk_backward_kept(model, grad) == -2)
    }

    /// Every result has the same bits at any thread count (each sum keeps
    /// one order whatever the split): log-probs and gradients through both
    /// kinds of pass, and decoding's logits, at 1, 2 and 3 threads, ragged
    /// lengths, d_ff 200, shared prefixes off and on. Shown to fail with
    /// LayerNorm backward's tasks adding their rows' terms without waiting
    /// for the tasks before them.
    @Test(arguments: [false, true])
    func theThreadCountChangesNoBit(share: Bool) {
        let dims = pk_dims(vocab: 13, d_model: 64, layers: 2, heads: 4, d_ff: 200, max_len: 32)
        let model = Self.model(dims, seed: 21, std: 0.15)
        defer { pk_model_free(model) }
        pk_model_share_prefixes(model, share ? 1 : 0)
        let (rows, stride) = (40, 32)
        var rng = RandomState(seed: 8)
        var tokens = (0..<(rows * stride)).map { _ in Int32(rng.next() % 13) }
        for r in Swift.stride(from: 1, to: rows, by: 3) {
            for t in 0..<6 { tokens[r * stride + t] = tokens[t] }
        }
        let lengths = (0..<rows).map { UInt32(stride - $0 % 5) }
        let grad = (0..<(rows * stride)).map { _ in Float(rng.uniform() * 2 - 1) }
        let prompts = (0..<rows).map { UInt32(3 + $0 % 4) }
        let next = (0..<rows).map { tokens[$0 * stride + Int(prompts[$0])] }
        func run() -> [[UInt32]] {
            let both = Self.bothPasses(model, dims, tokens: tokens, lengths: lengths, stride: stride, temperature: 0.9,
                                       grad: grad)
            var prefill = [Float](repeating: 0, count: rows * Int(dims.vocab)), step = prefill
            #expect(pk_decode_begin(model, tokens, prompts, Int32(rows), Int32(stride), &prefill) == 0)
            #expect(pk_decode_step(model, next, &step) == 0)
            return [both.logprobs, both.grads, both.kept, both.keptGrads, prefill, step].map { $0.map(\.bitPattern) }
        }
        let before = pk_threads()
        defer { pk_set_threads(before) }
        pk_set_threads(1)
        let serial = run()
        #expect(serial[1].contains { Float(bitPattern: $0) != 0 })
        let names = ["log-probs", "gradients", "kept log-probs", "kept gradients", "prefill logits", "step logits"]
        for threads in [2, 3] {
            pk_set_threads(Int32(threads))
            let parallel = run()
            for (i, name) in names.enumerated() {
                let differ = zip(parallel[i], serial[i]).filter { $0 != $1 }.count
                #expect(parallel[i].count == serial[i].count && differ == 0,
                        "\(name) at \(threads) threads: \(differ) of \(serial[i].count) differ")
            }
        }
    }

    /// Decoding at two or more threads splits a step's rows into parts that
    /// each run the whole step on one thread (decode_rows_pass), with the
    /// caller's kernels: the logits of the prefill, 14 steps of every row
    /// and a step of a subset have the bits of one thread, with the kernels
    /// the CPU has, AVX2 forced and the portable model (whose bits differ
    /// from the vector kernels': a part that took the worker's own kernels
    /// would show). At d_ff 100 a part of an odd number of rows ends inside
    /// a group of 8 GELU elements (70 rows: parts of 35 at 2 threads, of
    /// 23, 23 and 24 at 3); at d_ff 300 and 60 rows (18000 elements) the
    /// whole step's GELU runs in 8 chunks, each ending in 2 elements of the
    /// portable form (gelu_part gives each element the whole step's form;
    /// checked element by element in
    /// KernelStressTests.geluPartsGiveTheWholePassesBits).
    @Test(arguments: [(Int32(100), 70), (Int32(300), 60)])
    func decodingSplitByRowsGivesTheBitsOfOneThread(dFF: Int32, rows: Int) {
        let dims = pk_dims(vocab: 11, d_model: 32, layers: 2, heads: 2, d_ff: dFF, max_len: 24)
        let model = Self.model(dims, seed: 31, std: 0.15)
        defer { pk_model_free(model) }
        let stride = 24, V = Int(dims.vocab), steps = 14
        var rng = RandomState(seed: 9)
        let tokens = (0..<(rows * stride)).map { _ in Int32(rng.next() % 11) }
        let prompts = (0..<rows).map { UInt32(2 + $0 % 5) }
        let next = (0..<(rows * (steps + 1))).map { _ in Int32(rng.next() % 11) }
        let subset = (0..<rows).filter { $0 % 4 != 1 }.map(UInt32.init)
        func run() -> [UInt32] {
            var logits = [Float](repeating: 0, count: rows * V * (steps + 1))
            var some = [Float](repeating: 0, count: subset.count * V)
            #expect(pk_decode_begin(model, tokens, prompts, Int32(rows), Int32(stride), &logits) == 0)
            for step in 1...steps {
                let status = logits.withUnsafeMutableBufferPointer { out in
                    Array(next[(step * rows)..<((step + 1) * rows)]).withUnsafeBufferPointer {
                        pk_decode_step(model, $0.baseAddress!, out.baseAddress! + step * rows * V)
                    }
                }
                #expect(status == 0)
            }
            let picked = subset.map { next[Int($0)] }
            #expect(pk_decode_step_rows(model, subset, Int32(subset.count), picked, &some) == 0)
            return (logits + some).map(\.bitPattern)
        }
        let before = pk_threads()
        defer { pk_set_threads(before) }
        var results: [String: [UInt32]] = [:]
        for kernels in ["widest", "AVX2", "portable"] {
            let forced = pk_force_avx2(kernels == "AVX2" ? 1 : 0)
            defer { pk_force_avx2(forced) }
            pk_model_use_portable(model, kernels == "portable" ? 1 : 0)
            defer { pk_model_use_portable(model, 0) }
            pk_set_threads(1)
            let serial = run()
            results[kernels] = serial
            #expect(serial.contains { Float(bitPattern: $0) != 0 })
            for threads: Int32 in [2, 3] {
                pk_set_threads(threads)
                let parallel = run()
                let differ = zip(parallel, serial).filter { $0 != $1 }.count
                #expect(differ == 0, "d_ff \(dFF), \(rows) rows, \(threads) threads, \(kernels): \(differ) differ")
            }
        }
        // Else the portable model would not tell a part's kernels apart.
        #expect(pk_has_avx2_fma() == 0 || results["portable"] != results["widest"])
    }

    /// A product whose tasks cannot get their scratch memory is counted
    /// (pk_gemm_failures), and a pass with one returns -1 instead of
    /// results with blocks never computed. Only reservations too large for
    /// a product's packed panels fail here (those of more than 4096
    /// floats; attention's at this size are smaller), so the passes' -1
    /// comes from their products; those products, and the direct one
    /// (64 x 40 x 30), are small enough to run as one task on the calling
    /// thread, where the failures are set, whatever the thread count (a
    /// weight gradient backward posts to a worker runs with its poster's
    /// setting, pk_post; a product split into tasks may have all of them
    /// taken by another thread, pk_parallel_ranges). A kept pass so
    /// made is discarded and a decoding so begun is over; the passes
    /// succeed again once memory is back. Shown to fail with the passes not
    /// checking the count (they returned 0) and with the decoding not ended.
    @Test func aProductWithoutScratchFailsItsPass() {
        let dims = pk_dims(vocab: 11, d_model: 16, layers: 1, heads: 2, d_ff: 32, max_len: 12)
        let model = Self.model(dims, seed: 17)
        defer { pk_model_free(model) }
        let rows = 3, stride = 12
        let (tokens, grad) = Self.batch(vocab: 11, rows: rows, stride: stride, seed: 6)
        let lengths: [UInt32] = [12, 9, 10]
        var logprobs = [Float](repeating: 0, count: rows * stride)
        var rng = RandomState(seed: 7)
        let a = Self.uniforms(64 * 30, &rng), b = Self.uniforms(30 * 40, &rng)
        var c = [Float](repeating: 0, count: 64 * 40)

        let before = pk_gemm_failures()
        let previous = pk_test_fail_reservations_above(4096)
        pk_gemm(0, 0, 64, 40, 30, a, 30, b, 40, 0, &c, 40)
        let counted = pk_gemm_failures() - before
        let logprobsStatus = pk_logprobs(model, 0, tokens, lengths, Int32(rows), Int32(stride), 1, &logprobs)
        let backwardStatus = pk_backward(model, tokens, lengths, Int32(rows), Int32(stride), 1, grad)
        let keptStatus = pk_logprobs_keep(model, tokens, lengths, Int32(rows), Int32(stride), 1, &logprobs)
        let keptBackward = pk_backward_kept(model, grad)
        var logits = [Float](repeating: 0, count: rows * Int(dims.vocab))
        let prompts: [UInt32] = [4, 5, 3]
        let decodeStatus = pk_decode_begin(model, tokens, prompts, Int32(rows), Int32(stride), &logits)
        pk_test_fail_reservations_above(previous)
        #expect(counted == 1)
        #expect(logprobsStatus == -1)
        #expect(backwardStatus == -1)
        #expect(keptStatus == -1)
        #expect(keptBackward == -2)
        #expect(decodeStatus == -1)
        #expect(pk_decode_step(model, [1, 2, 3], &logits) == -2)

        let after = pk_gemm_failures()
        #expect(pk_logprobs(model, 0, tokens, lengths, Int32(rows), Int32(stride), 1, &logprobs) == 0)
        #expect(pk_backward(model, tokens, lengths, Int32(rows), Int32(stride), 1, grad) == 0)
        #expect(pk_gemm_failures() == after)
        #expect(logprobs.contains { $0 != 0 })
    }

    /// A tied head: the gradient of the one shared matrix (reported on
    /// `wte`, the head's copy getting none) against finite differences that
    /// move the embedding and the head together; after an AdamW step the
    /// head is still the embedding transposed.
    @Test func tiedHeadGradientIsTheSumOfBothUses() {
        let dims = pk_dims(vocab: 7, d_model: 8, layers: 1, heads: 2, d_ff: 16, max_len: 6)
        let model = Self.model(dims, seed: 8)
        defer { pk_model_free(model) }
        pk_model_tie_head(model, 1)
        let lay = pk_make_layout(dims)
        let D = 8, V = 7, count = Int(lay.total)
        let params = pk_params(model)!
        func headMatchesEmbedding() -> Bool {
            (0..<D).allSatisfy { i in (0..<V).allSatisfy { v in
                params[Int(lay.head_w) + i * V + v] == params[Int(lay.wte) + v * D + i]
            } }
        }
        #expect(headMatchesEmbedding())
        let rows = 2, stride = 6
        var rng = RandomState(seed: 4)
        let tokens = (0..<(rows * stride)).map { _ in Int32(rng.next() % 7) }
        let lengths: [UInt32] = [6, 5]
        let grad = (0..<(rows * stride)).map { _ in Float(rng.uniform() * 2 - 1) }
        func loss() -> Double {
            var out = [Float](repeating: 0, count: rows * stride)
            _ = pk_logprobs(model, 0, tokens, lengths, Int32(rows), Int32(stride), 1, &out)
            return zip(out, grad).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        pk_grads(model)!.update(repeating: 0, count: count)
        _ = pk_backward(model, tokens, lengths, Int32(rows), Int32(stride), 1, grad)
        let analytic = Array(UnsafeBufferPointer(start: pk_grads(model)!, count: count))
        #expect((0..<(D * V)).allSatisfy { analytic[Int(lay.head_w) + $0] == 0 })
        var direction = (0..<(V * D)).map { _ in rng.uniform() - 0.5 }
        let norm = direction.map { $0 * $0 }.reduce(0, +).squareRoot()
        direction = direction.map { $0 / norm }
        let h = 1e-2
        func shifted(_ k: Double) -> Double {
            func move(_ sign: Double) {
                for v in 0..<V {
                    for i in 0..<D {
                        let delta = Float(sign * k * h * direction[v * D + i])
                        params[Int(lay.wte) + v * D + i] += delta
                        params[Int(lay.head_w) + i * V + v] += delta
                    }
                }
            }
            move(1)
            defer { move(-1) }
            return loss()
        }
        let numeric = (shifted(-2) - 8 * shifted(-1) + 8 * shifted(1) - shifted(2)) / (12 * h)
        let exact = (0..<(V * D)).map { Double(analytic[Int(lay.wte) + $0]) * direction[$0] }.reduce(0, +)
        let error = abs(numeric - exact) / max(abs(numeric), abs(exact), 1e-2)
        #expect(error < 2e-2, "tied embedding: analytic \(exact) numeric \(numeric)")
        _ = pk_adamw(model, 1e-2, 0.9, 0.999, 1e-8, 0.1, 1.0)
        #expect(headMatchesEmbedding())
    }

    /// Head size 4 (scalar loops) and 8 (the AVX2 forms: eight keys per
    /// score block, the weighted sum in registers); prompts of 3–5 and 6
    /// decoded tokens cross the 8-key block.
    @Test(arguments: [(Int32(16), Int32(4)), (Int32(32), Int32(4))])
    func kvCacheDecodingMatchesFullForward(dModel: Int32, heads: Int32) {
        let dims = pk_dims(vocab: 11, d_model: dModel, layers: 2, heads: heads, d_ff: 2 * dModel, max_len: 20)
        let model = Self.model(dims, seed: 6, std: 0.2)
        defer { pk_model_free(model) }
        let rows = 3, full = 12, V = 11
        var rng = RandomState(seed: 2)
        let sequences = (0..<(rows * full)).map { _ in Int32(rng.next() % 11) }
        var logits = [Float](repeating: 0, count: rows * full * V)
        #expect(pk_logits(model, sequences, Int32(rows), Int32(full), &logits) == 0)
        let promptLengths: [UInt32] = [3, 5, 4]
        let stride = 5
        var prompts = [Int32](repeating: 0, count: rows * stride)
        for r in 0..<rows { for t in 0..<Int(promptLengths[r]) { prompts[r * stride + t] = sequences[r * full + t] } }
        var step = [Float](repeating: 0, count: rows * V)
        #expect(pk_decode_begin(model, prompts, promptLengths, Int32(rows), Int32(stride), &step) == 0)
        var worst: Float = 0
        for k in 0..<6 {
            for r in 0..<rows {
                let position = Int(promptLengths[r]) - 1 + k
                for v in 0..<V { worst = max(worst, abs(step[r * V + v] - logits[(r * full + position) * V + v])) }
            }
            let next = (0..<rows).map { sequences[$0 * full + Int(promptLengths[$0]) + k] }
            #expect(pk_decode_step(model, next, &step) == 0)
        }
        print("KV-cache decoding vs full forward: max abs logit difference \(worst)")
        #expect(worst < 1e-4)
    }

    /// Rows with the same prompt (a GRPO group) share one prefill; each row
    /// still decodes exactly as it would alone, bit for bit, including a
    /// prompt that is another's prefix and one equal to another but for its
    /// last token.
    @Test func repeatedPromptsDecodeAsEachAlone() {
        let dims = pk_dims(vocab: 11, d_model: 32, layers: 2, heads: 4, d_ff: 64, max_len: 20)
        let model = Self.model(dims, seed: 9, std: 0.2)
        defer { pk_model_free(model) }
        let V = 11, stride = 5
        let a: [Int32] = [1, 4, 7, 2, 9], b: [Int32] = [1, 4, 7, 2, 3], c: [Int32] = [1, 4, 7]
        let prompts = [a, a, b, a, c, b, c]
        let rows = prompts.count
        var batch = [Int32](repeating: 0, count: rows * stride)
        for (r, p) in prompts.enumerated() { for (t, token) in p.enumerated() { batch[r * stride + t] = token } }
        let lengths = prompts.map { UInt32($0.count) }
        var rng = RandomState(seed: 4)
        let steps = (0..<(3 * rows)).map { _ in Int32(rng.next() % 11) }  // [step][row]
        var together = [Float](repeating: 0, count: rows * V)
        var trace: [[Float]] = []
        #expect(pk_decode_begin(model, batch, lengths, Int32(rows), Int32(stride), &together) == 0)
        // The prefill computed shared prefixes once: a (5 rows), b's last token (1 each, its first 4
        // are a's), c twice (3 tokens: too short to share) = 13 of the 31 tokens.
        #expect(pk_model_rows(model) == 13)
        trace.append(together)
        for k in 0..<3 {
            #expect(pk_decode_step(model, Array(steps[(k * rows)..<((k + 1) * rows)]), &together) == 0)
            trace.append(together)
        }
        for (r, p) in prompts.enumerated() {
            var alone = [Float](repeating: 0, count: V)
            #expect(pk_decode_begin(model, p, [UInt32(p.count)], 1, Int32(p.count), &alone) == 0)
            #expect(alone == Array(trace[0][(r * V)..<((r + 1) * V)]), "row \(r), prompt")
            for k in 0..<3 {
                #expect(pk_decode_step(model, [steps[k * rows + r]], &alone) == 0)
                #expect(alone == Array(trace[k + 1][(r * V)..<((r + 1) * V)]), "row \(r), step \(k)")
            }
        }
    }

    /// pk_decode_step_rows computes only the rows listed and gives them, bit
    /// for bit, the logits decoding every row gives; a row left out is
    /// finished (listing it again, out of order or out of range is refused
    /// and changes nothing; pk_decode_step then writes it as 0). Head size 8.
    @Test func decodingOnlyTheRowsGoingMatchesDecodingEveryRow() {
        let dims = pk_dims(vocab: 11, d_model: 32, layers: 2, heads: 4, d_ff: 64, max_len: 20)
        let model = Self.model(dims, seed: 8, std: 0.2)
        defer { pk_model_free(model) }
        let rows = 7, stride = 4, V = 11
        var rng = RandomState(seed: 3)
        let prompts = (0..<(rows * stride)).map { _ in Int32(rng.next() % 11) }
        let lengths: [UInt32] = [4, 2, 3, 1, 4, 2, 3]
        let tokens = (0..<(6 * rows)).map { _ in Int32(rng.next() % 11) }  // [step][row]
        // Which rows are still going at each step.
        let going: [[Int]] = [[0, 1, 2, 3, 4, 5, 6], [0, 2, 3, 5, 6], [0, 3, 5, 6], [3, 5, 6], [3], [3]]
        var every = [Float](repeating: 0, count: rows * V)
        var some = [Float](repeating: 0, count: rows * V)
        var full: [[Float]] = []
        #expect(pk_decode_begin(model, prompts, lengths, Int32(rows), Int32(stride), &every) == 0)
        for k in 0..<7 {
            let step = k < 6 ? Array(tokens[(k * rows)..<((k + 1) * rows)]) : [Int32](repeating: 5, count: rows)
            #expect(pk_decode_step(model, step, &every) == 0)
            full.append(every)
        }
        #expect(pk_decode_begin(model, prompts, lengths, Int32(rows), Int32(stride), &some) == 0)
        for (k, list) in going.enumerated() {
            let listed = list.map(UInt32.init), listedTokens = list.map { tokens[k * rows + $0] }
            #expect(pk_decode_step_rows(model, listed, Int32(list.count), listedTokens, &some) == 0)
            for (i, r) in list.enumerated() {
                #expect(Array(some[(i * V)..<((i + 1) * V)]) == Array(full[k][(r * V)..<((r + 1) * V)]), "step \(k), row \(r)")
            }
            if k == 4 {
                // Refused, and nothing changes: a finished row, rows out of order, out of range; a bad token.
                #expect(pk_decode_step_rows(model, [1, 3], 2, [0, 0], &some) == -4)
                #expect(pk_decode_step_rows(model, [3, 3], 2, [0, 0], &some) == -4)
                #expect(pk_decode_step_rows(model, [7], 1, [0], &some) == -4)
                #expect(pk_decode_step_rows(model, [3], 1, [11], &some) == -5)
            }
        }
        // pk_decode_step after rows finished: row 3 goes on, the others are 0.
        var after = [Float](repeating: .nan, count: rows * V)
        #expect(pk_decode_step(model, [Int32](repeating: 5, count: rows), &after) == 0)
        for r in 0..<rows where r != 3 { #expect(after[(r * V)..<((r + 1) * V)].allSatisfy { $0 == 0 }) }
        #expect(Array(after[(3 * V)..<(4 * V)]) == Array(full[6][(3 * V)..<(4 * V)]))
    }
}
