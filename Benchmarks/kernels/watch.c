/* How busy this machine is, about twice a second: the FMA peak at one and
 * two threads (0.1 s each); one GEMM of the model (2048 x 128 x 384,
 * operands on cache lines; the best of 30 calls) on the pool's two threads
 * as a share of the two-thread peak; and the same GEMM on one thread pinned
 * to each of the first two CPUs, both at once, each as a share of the
 * one-thread peak. On the VMs this project is measured on, the GEMM on one
 * vCPU, or on both, drops from ~90% to ~55% for seconds at a time while the
 * FMA loop keeps its speed: what the host shares with other guests then is
 * a core's caches or its path to memory, not its FMA units. A product
 * split in halves then runs at the slower vCPU's pace, and every
 * two-thread figure taken in such a stretch (compare-pytorch.sh,
 * kernel-ab.sh) says more about the host than about the code. A line ends
 * "one slow" when one vCPU's GEMM is below 70% and the other's is not,
 * "both slow" when both are. Last, the round trip of a cache line between
 * threads pinned to those two CPUs (the best of 5 runs of 2000 passes):
 * on the Zen 5 VM 70-160 ns most of the time and ~410 ns for minutes at
 * a time, the vCPUs then on two dies of the host; decoding's hand-offs
 * and the smallest products cost more then ("apart" ends the line). With
 * another process running, the round trip shows its preemptions instead.
 *
 *   watch LIB [SECONDS]   (Benchmarks/machine-watch.sh) */
#define _GNU_SOURCE
#include "harness.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

enum { M = 2048, N = 384, K = 128, CALLS = 30 };

typedef void (*gemm_fn)(int, int, int, int, int, const float *, int, const float *, int, float, float *, int);

static gemm_fn gemm;
static pthread_barrier_t start_line;

typedef struct pinned {
  int cpu;
  float *a, *b, *c;  /* its own operands */
  double rate;       /* GFLOP/s, the best of CALLS calls */
} pinned;

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static double best_rate(const float *a, const float *b, float *c) {
  double best = 1e9;
  for (int r = 0; r < CALLS; ++r) {
    double t = now();
    gemm(0, 0, M, N, K, a, K, b, N, 0.0f, c, N);
    t = now() - t;
    if (t < best) best = t;
  }
  return 2.0 * M * N * K / best * 1e-9;
}

static void *run_pinned(void *arg) {
  pinned *p = arg;
  pin(p->cpu);
  pthread_barrier_wait(&start_line);
  p->rate = best_rate(p->a, p->b, p->c);
  return NULL;
}

/* The cache line two pinned threads pass back and forth (round_trip_ns). */
static _Alignas(64) atomic_int ball;
enum { PASSES = 2000 };

/* On its CPU, says it is ready (1), then answers each pass (2i + 2 with
 * 2i + 3). */
static void *return_ball(void *arg) {
  pin(*(const int *)arg);
  atomic_store_explicit(&ball, 1, memory_order_release);
  for (int i = 0; i < PASSES; ++i) {
    while (atomic_load_explicit(&ball, memory_order_acquire) != 2 * i + 2) {
    }
    atomic_store_explicit(&ball, 2 * i + 3, memory_order_release);
  }
  return NULL;
}

/* A cache line's round trip between threads on cpus[0] and cpus[1], ns;
 * the calling thread's affinity is restored. */
static double round_trip_ns(const int cpus[2]) {
  cpu_set_t was;
  pthread_getaffinity_np(pthread_self(), sizeof was, &was);
  pin(cpus[0]);
  double best = 1e9;
  for (int run = 0; run < 5; ++run) {
    atomic_store(&ball, 0);
    pthread_t other;
    if (pthread_create(&other, NULL, return_ball, (void *)&cpus[1]) != 0) break;
    while (atomic_load_explicit(&ball, memory_order_acquire) != 1) {
    }
    double t = now();
    for (int i = 0; i < PASSES; ++i) {
      atomic_store_explicit(&ball, 2 * i + 2, memory_order_release);
      while (atomic_load_explicit(&ball, memory_order_acquire) != 2 * i + 3) {
      }
    }
    t = now() - t;
    pthread_join(other, NULL);
    if (t < best) best = t;
  }
  pthread_setaffinity_np(pthread_self(), sizeof was, &was);
  return best / PASSES * 1e9;
}

static int operands(float **a, float **b, float **c) {
  *a = aligned_alloc(64, sizeof(float) * M * K);
  *b = aligned_alloc(64, sizeof(float) * K * N);
  *c = aligned_alloc(64, sizeof(float) * M * N);
  if (!*a || !*b || !*c) return 0;
  for (int i = 0; i < M * K; ++i) (*a)[i] = (float)(i % 7) * 0.1f;
  for (int i = 0; i < K * N; ++i) (*b)[i] = (float)(i % 5) * 0.1f;
  return 1;
}

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
  gemm = (gemm_fn)symbol("watch", lib, argv[1], "pk_gemm");
  /* The first two CPUs this process may run on. */
  cpu_set_t allowed;
  int cpus[2], found = 0;
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
    for (int c = 0; c < CPU_SETSIZE && found < 2; ++c)
      if (CPU_ISSET(c, &allowed)) cpus[found++] = c;
  if (found < 2) {
    fprintf(stderr, "watch: needs two CPUs, this process may use %d\n", found);
    return 1;
  }
  pinned each[2] = {{.cpu = cpus[0]}, {.cpu = cpus[1]}};
  float *a, *b, *c;
  if (!operands(&a, &b, &c) || !operands(&each[0].a, &each[0].b, &each[0].c) ||
      !operands(&each[1].a, &each[1].b, &each[1].c)) {
    fprintf(stderr, "watch: out of memory\n");
    return 1;
  }
  printf("%7s %22s %43s %11s\n", "", "FMA peak, GFLOP/s", "GEMM 2048x128x384, % of the peak", "CPUs'");
  printf("%7s %10s %11s %12s %15s %7s %11s\n", "second", "1 thread", "2 threads", "2 threads", "one on CPU", "",
         "round trip");
  printf("%7s %10s %11s %12s %15d %7d\n", "", "", "", "", cpus[0], cpus[1]);
  double start = now();
  while (now() - start < seconds) {
    /* First, once the pool's worker has stopped spinning (it would share a
     * CPU with one of the two threads). */
    nanosleep(&(struct timespec){0, 10000000}, NULL);
    double trip = round_trip_ns(cpus);
    double fma1 = peak(1, 0.1), fma2 = peak(2, 0.1);
    set_threads(2);
    double two = 100 * best_rate(a, b, c) / fma2;
    /* One thread each (pk_gemm then runs on its caller), started together. */
    set_threads(1);
    pthread_barrier_init(&start_line, NULL, 2);
    pthread_t threads[2];
    int made = 0;
    for (; made < 2; ++made)
      if (pthread_create(&threads[made], NULL, run_pinned, &each[made]) != 0) break;
    if (made < 2) {
      fprintf(stderr, "watch: could not start a thread\n");
      return 1;
    }
    for (int i = 0; i < 2; ++i) pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start_line);
    double on0 = 100 * each[0].rate / fma1, on1 = 100 * each[1].rate / fma1;
    int slow = (on0 < 70) + (on1 < 70);
    printf("%7.1f %10.0f %11.0f %11.0f%% %14.0f%% %6.0f%% %8.0f ns%s%s\n", now() - start, fma1, fma2, two, on0, on1,
           trip, slow == 2 ? "  both slow" : slow == 1 ? "  one slow" : "", trip > 300 ? "  apart" : "");
    fflush(stdout);
  }
  return 0;
}
