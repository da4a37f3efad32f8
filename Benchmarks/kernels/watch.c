/* How busy this machine is, about twice a second: the FMA peak at one and
 * two threads (0.1 s each) beside one GEMM of the model (2048 x 128 x 384,
 * operands on cache lines; the best of 30 calls) at one and two threads,
 * as a share of that peak. On the VMs this project is measured on, the
 * two-thread GEMM drops from ~90% to ~55% of the peak for seconds or
 * minutes at a time, while the FMA loop at two threads and the GEMM at one
 * keep their speed: what the host shares with other guests then is the
 * path to memory, not the FMA units, and every two-thread figure taken in
 * such a stretch (compare-pytorch.sh, kernel-ab.sh) says more about the
 * host than about the code. Lines whose two-thread GEMM falls below 70%
 * of the peak are marked "busy".
 *
 *   watch LIB [SECONDS]   (Benchmarks/machine-watch.sh) */
#include "harness.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: watch LIB [SECONDS]\n");
    return 2;
  }
  double seconds = argc > 2 ? atof(argv[2]) : 30.0;
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "watch: %s\n", dlerror());
    return 1;
  }
  void (*set_threads)(int) = symbol("watch", lib, argv[1], "pk_set_threads");
  double (*peak)(int, double) = symbol("watch", lib, argv[1], "pk_fma_peak_gflops");
  void (*gemm)(int, int, int, int, int, const float *, int, const float *, int, float, float *, int) =
      symbol("watch", lib, argv[1], "pk_gemm");
  enum { M = 2048, N = 384, K = 128 };
  float *a = aligned_alloc(64, sizeof(float) * M * K), *b = aligned_alloc(64, sizeof(float) * K * N),
        *c = aligned_alloc(64, sizeof(float) * M * N);
  if (!a || !b || !c) {
    fprintf(stderr, "watch: out of memory\n");
    return 1;
  }
  for (int i = 0; i < M * K; ++i) a[i] = (float)(i % 7) * 0.1f;
  for (int i = 0; i < K * N; ++i) b[i] = (float)(i % 5) * 0.1f;
  printf("%7s %22s %34s\n", "", "FMA peak, GFLOP/s", "GEMM 2048x128x384, % of the peak");
  printf("%7s %10s %11s %16s %17s\n", "second", "1 thread", "2 threads", "1 thread", "2 threads");
  double start = now();
  while (now() - start < seconds) {
    double fma[3], rate[3];
    for (int threads = 1; threads <= 2; ++threads) {
      fma[threads] = peak(threads, 0.1);
      set_threads(threads);
      double best = 1e9;
      for (int r = 0; r < 30; ++r) {
        double t = now();
        gemm(0, 0, M, N, K, a, K, b, N, 0.0f, c, N);
        t = now() - t;
        if (t < best) best = t;
      }
      rate[threads] = 2.0 * M * N * K / best * 1e-9;
    }
    double two = 100 * rate[2] / fma[2];
    printf("%7.1f %10.0f %11.0f %15.0f%% %16.0f%%%s\n", now() - start, fma[1], fma[2], 100 * rate[1] / fma[1], two,
           two < 70 ? "  busy" : "");
    fflush(stdout);
  }
  return 0;
}
