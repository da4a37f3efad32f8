/* The GEMM's fused forms against the passes they replace, bit for bit:
 *   - pk_gemm_sums: the product and B's column sums, against pk_gemm and a
 *     loop adding B's rows first to last;
 *   - pk_gemm_residual: against copying the residual into C and
 *     accumulating (pk_gemm_bias, beta 1);
 *   - pk_gemm_times: against the product (pk_gemm) and a loop multiplying
 *     each element by T's, with B in place and packed (pk_pack_b).
 * Over the training pass's weight-gradient and residual shapes, split by
 * rows (every task packs all of B; one must sum it) and by columns, edges
 * of B that are not whole 16-column panels, products small enough to run
 * on one task, and K = 0; at 1 and 2 threads, with the kernels the CPU
 * has, forced AVX2 and portable. Exit 0 with "fused forms agreed" when
 * everything agreed, 1 naming the first disagreement, 2 on an allocation
 * failure.
 *
 *   gemm_fused
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "prism_kernels.h"

typedef struct shape {
  int m, n, k;
} shape;

static const shape shapes[] = {
    {512, 128, 2048}, /* the MLP's second weight gradient: a row split */
    {128, 384, 2048}, /* qkv's: a column split */
    {128, 100, 700},  /* B's last panel 4 columns wide */
    {40, 40, 33},     /* one task */
    {7, 5, 0},        /* no k at all */
};
enum { SHAPES = sizeof shapes / sizeof shapes[0] };

static unsigned state = 12345;
static float uniform(void) {
  state = state * 1664525u + 1013904223u;
  return (float)(state >> 8) / 16777216.0f - 0.5f;
}

static float *floats(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  for (size_t i = 0; i < n; ++i) p[i] = uniform();
  return p;
}

static int same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

static int check(const shape *s, int threads, const char *kernels) {
  int M = s->m, N = s->n, K = s->k;
  float *A = floats((size_t)K * M), *B = floats((size_t)K * N), *C0 = floats((size_t)M * N);
  float *R = floats((size_t)M * N), *bias = floats((size_t)N), *sums0 = floats((size_t)N);
  float *C1 = malloc((size_t)M * N * sizeof(float)), *C2 = malloc((size_t)M * N * sizeof(float));
  float *sums1 = malloc((size_t)N * sizeof(float)), *sums2 = malloc((size_t)N * sizeof(float));
  if (!C1 || !C2 || !sums1 || !sums2) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  int failed = 0;
  /* The weight gradient's form: C += Aᵀ·B (A stored [K][M]), sums += B's columns. */
  memcpy(C1, C0, (size_t)M * N * sizeof(float));
  memcpy(sums1, sums0, (size_t)N * sizeof(float));
  pk_gemm(1, 0, M, N, K, A, M, B, N, 1.0f, C1, N);
  for (int k = 0; k < K; ++k)
    for (int j = 0; j < N; ++j) sums1[j] += B[(size_t)k * N + j];
  memcpy(C2, C0, (size_t)M * N * sizeof(float));
  memcpy(sums2, sums0, (size_t)N * sizeof(float));
  pk_gemm_sums(1, M, N, K, A, M, B, N, 1.0f, C2, N, sums2);
  if (!same(C1, C2, (size_t)M * N) || !same(sums1, sums2, (size_t)N)) {
    printf("pk_gemm_sums %dx%dx%d, %d threads, %s: %s differ\n", M, N, K, threads, kernels,
           same(C1, C2, (size_t)M * N) ? "the column sums" : "the products");
    failed = 1;
  }
  /* The residual form: C = R + bias + A·B (A stored [M][K]). */
  memcpy(C1, R, (size_t)M * N * sizeof(float));
  pk_gemm_bias(0, 0, M, N, K, A, K, B, N, 1.0f, C1, N, bias);
  memset(C2, 0, (size_t)M * N * sizeof(float));
  pk_gemm_residual(0, 0, M, N, K, A, K, B, N, R, N, C2, N, bias);
  if (!same(C1, C2, (size_t)M * N)) {
    printf("pk_gemm_residual %dx%dx%d, %d threads, %s: the products differ\n", M, N, K, threads, kernels);
    failed = 1;
  }
  /* The times form: C = (A·B) ⊙ T (A stored [M][K]); R stands for T. */
  pk_gemm(0, 0, M, N, K, A, K, B, N, 0.0f, C1, N);
  for (size_t i = 0; i < (size_t)M * N; ++i) C1[i] *= R[i];
  float *packed = malloc((pk_packed_b_floats(K, N) + 1) * sizeof(float));
  if (!packed) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  pk_pack_b(0, K, N, B, N, packed);
  for (int form = 0; form < 2; ++form) {
    memset(C2, 0, (size_t)M * N * sizeof(float));
    if (form == 0) pk_gemm_times(0, M, N, K, A, K, B, N, NULL, C2, N, R, N);
    else pk_gemm_times(0, M, N, K, A, K, NULL, 0, packed, C2, N, R, N);
    if (!same(C1, C2, (size_t)M * N)) {
      printf("pk_gemm_times %dx%dx%d, B %s, %d threads, %s: the products differ\n", M, N, K,
             form ? "packed" : "in place", threads, kernels);
      failed = 1;
    }
  }
  free(packed);
  free(A), free(B), free(C0), free(R), free(bias), free(sums0), free(C1), free(C2), free(sums1), free(sums2);
  return failed;
}

int main(void) {
  int failed = 0, checks = 0;
  for (int mode = 0; mode < 3; ++mode) {
    pk_force_avx2(mode == 1);
    pk_force_portable(mode == 2);
    const char *kernels = pk_kernels_name();
    for (int threads = 1; threads <= 2; ++threads) {
      pk_set_threads(threads);
      for (int s = 0; s < SHAPES; ++s, ++checks) failed |= check(&shapes[s], threads, kernels);
    }
  }
  if (failed) return 1;
  printf("fused forms agreed (%d checks)\n", checks);
  return 0;
}
