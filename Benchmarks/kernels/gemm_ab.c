/* Two builds of the transformer kernels' GEMM on the model's shapes (the
 * reference shape's forward, dW = Aᵀ·dY and dX = dY·Wᵀ products, and
 * decoding's with B packed once, as `prism bench transformer` lists them),
 * each shape's timings alternated between the builds in one process.
 * Training shapes cycle through 16 operand sets (128 MB in all), so their
 * operands come from beyond L2 as a pass's activations do; decoding's A
 * (a step's rows) stays in cache. Prints each shape's best
 * and median round as a share of the FMA peak measured first.
 *
 *   gemm_ab LIB_A LIB_B [THREADS] [ROUNDS]   (Benchmarks/kernel-ab.sh --gemm) */
#include "harness.h"
#include "prism_kernels.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct build {
  const char *path;
  void (*gemm)(int, int, int, int, int, const float *, int, const float *, int, float, float *, int);
  void (*gemm_packed)(int, int, int, int, const float *, int, const float *, float, float *, int, const float *);
  void (*pack_b)(int, int, int, const float *, int, float *);
  size_t (*packed_floats)(int, int);
} build;

typedef struct shape {
  const char *name;
  int ta, tb, m, n, k, decoding;
} shape;

static const shape shapes[] = {
    {"qkv", 0, 0, 2048, 384, 128, 0},      {"proj", 0, 0, 2048, 128, 128, 0},
    {"ffn1", 0, 0, 2048, 512, 128, 0},     {"ffn2", 0, 0, 2048, 128, 512, 0},
    {"head", 0, 0, 2048, 32, 128, 0},      {"dW qkv", 1, 0, 128, 384, 2048, 0},
    {"dW ffn1", 1, 0, 128, 512, 2048, 0},  {"dW ffn2", 1, 0, 512, 128, 2048, 0},
    {"dX qkv", 0, 1, 2048, 128, 384, 0},   {"dX ffn1", 0, 1, 2048, 128, 512, 0},
    {"dX ffn2", 0, 1, 2048, 512, 128, 0},  {"decode qkv", 0, 0, 64, 384, 128, 1},
    {"decode proj", 0, 0, 64, 128, 128, 1}, {"decode ffn1", 0, 0, 64, 512, 128, 1},
    {"decode ffn2", 0, 0, 64, 128, 512, 1},
};
enum { SHAPES = sizeof shapes / sizeof shapes[0], SETS = 16, SET_FLOATS = 1 << 20 };

static float *floats(size_t n) {
  float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
  if (!p) {
    fprintf(stderr, "gemm_ab: out of memory\n");
    exit(1);
  }
  return p;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: gemm_ab LIB_A LIB_B [THREADS] [ROUNDS]\n");
    return 2;
  }
  int threads = argc > 3 ? atoi(argv[3]) : 2, rounds = argc > 4 ? atoi(argv[4]) : 15;
  if (threads < 1 || rounds < 1) {
    fprintf(stderr, "gemm_ab: THREADS and ROUNDS must be positive\n");
    return 2;
  }
  build builds[2];
  double (*peak)(int, double) = NULL;
  for (int b = 0; b < 2; ++b) {
    build *x = &builds[b];
    x->path = argv[1 + b];
    void *lib = dlopen(x->path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      fprintf(stderr, "gemm_ab: %s\n", dlerror());
      return 1;
    }
    x->gemm = symbol("gemm_ab", lib, x->path, "pk_gemm");
    x->gemm_packed = symbol("gemm_ab", lib, x->path, "pk_gemm_packed");
    x->pack_b = symbol("gemm_ab", lib, x->path, "pk_pack_b");
    x->packed_floats = symbol("gemm_ab", lib, x->path, "pk_packed_b_floats");
    void (*set_threads)(int) = symbol("gemm_ab", lib, x->path, "pk_set_threads");
    set_threads(threads);
    if (b == 0) peak = symbol("gemm_ab", lib, x->path, "pk_fma_peak_gflops");
  }
  float *a[SETS], *bm[SETS], *c = floats(SET_FLOATS);
  for (int s = 0; s < SETS; ++s) {
    a[s] = floats(SET_FLOATS);
    bm[s] = floats(SET_FLOATS);
    for (int i = 0; i < SET_FLOATS; ++i) a[s][i] = (float)(i % 7) * 0.1f, bm[s][i] = (float)(i % 5) * 0.1f;
  }
  /* Decoding's B packed once per build, as pk_decode_begin packs it. */
  float *packed[2][SHAPES] = {{0}};
  for (int b = 0; b < 2; ++b)
    for (int s = 0; s < SHAPES; ++s) {
      const shape *p = &shapes[s];
      if (!p->decoding) continue;
      packed[b][s] = floats(builds[b].packed_floats(p->k, p->n));
      builds[b].pack_b(p->tb, p->k, p->n, bm[0], p->tb ? p->k : p->n, packed[b][s]);
    }
  double gflops_peak = peak(threads, 0.5);
  static double rates[2][SHAPES][1000];
  if (rounds > 1000) rounds = 1000;
  for (int r = 0; r < rounds; ++r)
    for (int s = 0; s < SHAPES; ++s)
      for (int i = 0; i < 2; ++i) {
        int b = (r + s) & 1 ? 1 - i : i; /* which build goes first alternates */
        const shape *p = &shapes[s];
        double flops = 2.0 * p->m * p->n * p->k;
        int calls = (int)(1e8 / flops);
        if (calls < SETS) calls = SETS;
        int lda = p->ta ? p->m : p->k, ldb = p->tb ? p->k : p->n;
        double t = now();
        for (int call = 0; call < calls; ++call) {
          if (p->decoding) /* a step's few rows stay in cache */
            builds[b].gemm_packed(0, p->m, p->n, p->k, a[0], lda, packed[b][s], 0.0f, c, p->n, NULL);
          else
            builds[b].gemm(p->ta, p->tb, p->m, p->n, p->k, a[call % SETS], lda, bm[call % SETS], ldb, 0.0f, c, p->n);
        }
        rates[b][s][r] = flops * calls / (now() - t) / 1e9;
        usleep(2000);
      }
  printf("GEMM, %d thread(s), FMA peak %.1f GFLOP/s, %d alternated rounds (%% of the peak: best, median):\n",
         threads, gflops_peak, rounds);
  printf("  %-12s %14s %14s\n", "", "A", "B");
  for (int s = 0; s < SHAPES; ++s) {
    double best[2], median[2];
    for (int b = 0; b < 2; ++b) {
      qsort(rates[b][s], (size_t)rounds, sizeof(double), by_value);
      best[b] = 100 * rates[b][s][rounds - 1] / gflops_peak;
      median[b] = 100 * rates[b][s][rounds / 2] / gflops_peak;
    }
    printf("  %-12s %6.1f %6.1f  %6.1f %6.1f\n", shapes[s].name, best[0], median[0], best[1], median[1]);
  }
  printf("  A = %s\n  B = %s\n", builds[0].path, builds[1].path);
  return 0;
}
