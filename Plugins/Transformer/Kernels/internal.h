/* Internal to the kernels: the shared thread pool and scratch buffers. */
#ifndef PRISM_KERNELS_INTERNAL_H
#define PRISM_KERNELS_INTERNAL_H

#include <stddef.h>

#include "prism_kernels.h"

typedef void (*pk_task_fn)(void *ctx, int task);

/* Runs fn(ctx, 0..tasks-1) on the pool and the calling thread; returns when
 * all are done. Not reentrant. The calling thread runs task 0. */
void pk_parallel_for(int tasks, pk_task_fn fn, void *ctx);

/* As pk_parallel_for, the tasks taken in one contiguous range per thread,
 * the first range on the calling thread (a thread done early takes tasks
 * from the end of another's range). For passes over the activations' rows:
 * each thread then works on the rows it wrote in the pass before (a GEMM
 * split by rows gives the caller the first rows), which are in its own
 * L2. Reading lines another core had just written ran at 22 GB/s against
 * 60 from its own L2 (1 MB, this Xeon). Tasks must not depend on their
 * order. */
void pk_parallel_ranges(int tasks, pk_task_fn fn, void *ctx);

/* As pk_parallel_for, each task run as its caller would run it on one
 * thread: the caller's kernel choice and test hook, pk_threads() 1 inside
 * (a product in it is one task; a pk_parallel_for in it runs inline), the
 * scratch failures of its products counted in the caller's
 * pk_gemm_failures. For work split into parts that each run a chain of
 * products with no exchange between the parts. */
void pk_parallel_solo(int tasks, pk_task_fn fn, void *ctx);

/* Background work: pk_post starts fn(ctx, 0) on a pool worker with
 * nothing else to do, and returns at once; pk_wait(item) returns when it
 * has run (running it on the calling thread if no worker has taken it), so
 * every post must be waited for. The call runs with the poster's kernel
 * choice, on one thread (pk_threads() is 1 there: a product in it is one
 * task, packing each operand once), and its products that could not get
 * their scratch count in the waiting thread's pk_gemm_failures. With one
 * thread (or no worker started yet) pk_post runs fn itself and returns -1,
 * which pk_wait ignores. For work whose result is needed only later: the
 * weight gradients of backward beside the chain of input gradients. */
int pk_post(pk_task_fn fn, void *ctx);
void pk_wait(int item);

/* The calling thread's kernels: PK_PORTABLE, PK_AVX2 (AVX2+FMA) or
 * PK_AVX512 (AVX2+FMA and AVX-512), after pk_force_portable and
 * pk_force_avx2. A GEMM job and the model's vector loops carry the value
 * into pool tasks, whose threads have their own forcing. */
enum { PK_PORTABLE, PK_AVX2, PK_AVX512 };
static inline int pk_kernel_level(void) { return pk_has_avx2_fma() + pk_has_avx512(); }

/* C = op(A)·B + beta·C (B untransposed), and b_sums[j] += the sum of B's
 * column j over its K rows, first to last (the bits of a separate loop). */
void pk_gemm_sums(int trans_a, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc, float *b_sums);

/* C = residual + bias + op(A)·op(B) (row strides ldr, ldc; bias may be
 * NULL): the bits of copying the residual into C and accumulating. */
void pk_gemm_residual(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda, const float *B,
                      int ldb, const float *residual, int ldr, float *C, int ldc, const float *bias);

/* pk_gemm_residual with op(B) packed by pk_pack_b. */
void pk_gemm_packed_residual(int trans_a, int M, int N, int K, const float *A, int lda, const float *packed_b,
                             const float *residual, int ldr, float *C, int ldc, const float *bias);

/* C = (A·op(B)) ⊙ times (row strides ldc, ldt): the bits of the product
 * followed by a pass multiplying each element, which the product's tiles
 * do as they store their last KC block (the GELU gradient: dfc *= gelu').
 * op(B) packed by pk_pack_b when packed_b is not NULL (B, ldb, trans_b then
 * unused). */
void pk_gemm_times(int trans_b, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                   const float *packed_b, float *C, int ldc, const float *times, int ldt);

/* A growable buffer on a cache line, thread-local where it is used. */
typedef struct pk_scratch {
  float *data;
  size_t capacity;
  struct pk_scratch *next; /* the thread's other scratch buffers */
  int listed;              /* on its thread's list */
} pk_scratch;

/* At least `floats` floats of `s`, its contents lost when it grows; NULL on
 * allocation failure. `s` must be _Thread_local: the first call puts it on
 * the calling thread's list, whose buffers are freed when the thread exits
 * (a program embedding the kernels may run each call on a new thread). */
float *pk_reserve(pk_scratch *s, size_t floats);

#include <stdint.h>

/* e^x in single precision, branch-free so loops over it vectorise:
 * x = k ln2 + r, |r| <= ln2/2, a degree-6 polynomial for e^r (relative error
 * below 3e-7), and 2^k built in the exponent bits. Clamped to [-87, 88]. */
static inline float pk_expf(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  float y = x * 1.44269504f;
  float k = (float)(int32_t)(y + (y >= 0.0f ? 0.5f : -0.5f));
  float r = x - k * 0.693145752f - k * 1.42860677e-6f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  union { uint32_t u; float f; } scale = {(uint32_t)((int32_t)k + 127) << 23};
  return p * scale.f;
}

/* Element-wise and attention loops get an AVX2 clone chosen at load time
 * (ifunc) besides the portable one. PK_NO_MULTIVERSION turns that off for
 * sanitizer builds: ThreadSanitizer crashes in ifunc resolvers, which run
 * before its runtime is initialised. No "avx512f" clone: that target
 * implies FMA, and the compiler would contract a * b + c in these loops
 * into fused operations, changing their bits (Decisions #63). */
#if defined(__x86_64__) && defined(__linux__) && !defined(PK_NO_MULTIVERSION)
#define PK_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define PK_MULTIVERSION
#endif

/* tanh via pk_expf: 1 - 2 / (e^(2x) + 1). */
static inline float pk_tanhf(float x) { return 1.0f - 2.0f / (pk_expf(2.0f * x) + 1.0f); }

#if defined(__x86_64__)
#include <immintrin.h>

/* Transposes eight rows of eight floats in registers: r[j] becomes column j. */
__attribute__((target("avx2"))) static inline void transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20), r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20), r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31), r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31), r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}
#endif

#endif
