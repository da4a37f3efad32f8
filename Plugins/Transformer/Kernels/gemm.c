/*
 * gemm.c — single-precision matrix multiply with runtime dispatch, and the
 * thread pool the kernels share.
 *
 * Blocked GEMM in the BLIS style: op(B) is packed into KC x NR panels and
 * op(A) into MC x KC blocks of MR-row panels; a register micro-kernel
 * computes an MR x NR tile (6 x 16: 12 AVX registers of 8 floats) from a
 * packed A panel and a packed B panel. The AVX2+FMA micro-kernel is compiled
 * for that target only and chosen at run time; the portable one is plain C.
 */
#include "prism_kernels.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MR 6
#define NR 16
#define KC 256
#define MC 96

/* ------------------------------------------------------------ dispatch */

static atomic_int use_avx2 = -1; /* -1 until the CPU was asked */
/* Per thread, so one model's choice never changes another's kernels; a GEMM
 * takes the choice of the thread that calls it to every pool worker. */
static _Thread_local int forced_portable = 0;

int pk_has_avx2_fma(void) {
  int avx2 = atomic_load_explicit(&use_avx2, memory_order_relaxed);
  if (avx2 < 0) {
    __builtin_cpu_init();
    avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    atomic_store_explicit(&use_avx2, avx2, memory_order_relaxed);
  }
  return avx2 && !forced_portable;
}

int pk_force_portable(int portable) {
  int previous = forced_portable;
  forced_portable = portable;
  return previous;
}

/* ---------------------------------------------------------- thread pool */

#include "internal.h"

/* A job is published under `lock` with a new epoch; workers copy it under
 * the lock and count themselves in `busy` while they may touch it. Tasks are
 * claimed from `claim`, which holds the job's epoch in its high 32 bits and
 * the next task index in its low 32 bits, so a claim is valid only for the
 * job it was made for. (An earlier version kept a bare `next` counter that
 * each job reset: a worker that woke for a job after its caller had already
 * finished and returned could then take a stale index from the *next* job's
 * counter just before the reset, and run one of its tasks twice — attention
 * then summed its output twice. Caught by Tests/Fixtures/kernel_stress.c.)
 * The caller returns only when every task is finished and no worker is busy,
 * so no worker can touch a job's context after its caller has returned. */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  pthread_cond_t done;
  pthread_t workers[16];
  int started;      /* workers running */
  atomic_int wanted; /* threads to use, including the caller; 0 = not set */
  atomic_uint epoch; /* bumped (under lock) for each job */
  int busy;         /* workers that joined a job and have not left it */
  pk_task_fn fn;    /* the current job, written under lock */
  void *ctx;
  int tasks;
  atomic_uint_fast64_t claim; /* (epoch << 32) | next task index */
  atomic_int finished;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

/* Claims and runs tasks of job `epoch` until none is left (or another job
 * has replaced it). */
static void run_tasks(unsigned epoch, pk_task_fn fn, void *ctx, int tasks) {
  uint_fast64_t current = atomic_load(&pool.claim);
  for (;;) {
    if ((unsigned)(current >> 32) != epoch || (int)(uint32_t)current >= tasks) return;
    if (!atomic_compare_exchange_weak(&pool.claim, &current, current + 1)) continue;
    fn(ctx, (int)(uint32_t)current);
    atomic_fetch_add(&pool.finished, 1);
    current = atomic_load(&pool.claim);
  }
}

/* How long a worker spins for the next job before sleeping: back-to-back
 * kernel calls (decoding) then cost no wake-up. */
#define SPIN_ROUNDS 20000

static void *worker(void *arg) {
  (void)arg;
  unsigned seen = 0;
  for (;;) {
    for (int spin = 0; spin < SPIN_ROUNDS && atomic_load(&pool.epoch) == seen; ++spin) {
      __builtin_ia32_pause();
    }
    pthread_mutex_lock(&pool.lock);
    while (atomic_load(&pool.epoch) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
    seen = atomic_load(&pool.epoch);
    pk_task_fn fn = pool.fn;
    void *ctx = pool.ctx;
    int tasks = pool.tasks;
    pool.busy++;
    pthread_mutex_unlock(&pool.lock);
    run_tasks(seen, fn, ctx, tasks);
    pthread_mutex_lock(&pool.lock);
    pool.busy--;
    pthread_cond_broadcast(&pool.done);
    pthread_mutex_unlock(&pool.lock);
  }
  return NULL;
}

int pk_threads(void) {
  int wanted = atomic_load_explicit(&pool.wanted, memory_order_relaxed);
  if (wanted == 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    wanted = cpus < 1 ? 1 : cpus > 16 ? 16 : (int)cpus;
    int unset = 0;
    atomic_compare_exchange_strong(&pool.wanted, &unset, wanted);
    wanted = atomic_load_explicit(&pool.wanted, memory_order_relaxed);
  }
  return wanted;
}

void pk_set_threads(int threads) {
  atomic_store(&pool.wanted, threads < 1 ? 1 : threads > 16 ? 16 : threads);
}

/* One caller at a time owns the pool; others (another instance used from
 * another thread) run their tasks inline rather than wait. */
static pthread_mutex_t pool_owner = PTHREAD_MUTEX_INITIALIZER;

/* Runs fn(ctx, 0..tasks-1) on the pool and the calling thread; returns
 * when all are done. Safe to call from several threads at once. */
void pk_parallel_for(int tasks, pk_task_fn fn, void *ctx) {
  int threads = pk_threads();
  if (tasks <= 1 || threads <= 1 || pthread_mutex_trylock(&pool_owner) != 0) {
    for (int t = 0; t < tasks; ++t) fn(ctx, t);
    return;
  }
  pthread_mutex_lock(&pool.lock);
  while (pool.started < threads - 1 && pool.started < 15) {
    if (pthread_create(&pool.workers[pool.started], NULL, worker, NULL) != 0) break;
    pthread_detach(pool.workers[pool.started]);
    pool.started++;
  }
  unsigned epoch = atomic_load(&pool.epoch) + 1;
  pool.fn = fn;
  pool.ctx = ctx;
  pool.tasks = tasks;
  atomic_store(&pool.finished, 0);
  atomic_store(&pool.claim, (uint_fast64_t)epoch << 32);
  atomic_store(&pool.epoch, epoch);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.lock);
  run_tasks(epoch, fn, ctx, tasks);
  for (int spin = 0; spin < SPIN_ROUNDS && atomic_load(&pool.finished) < tasks; ++spin) {
    __builtin_ia32_pause();
  }
  pthread_mutex_lock(&pool.lock);
  while (atomic_load(&pool.finished) < tasks || pool.busy > 0) {
    pthread_cond_wait(&pool.done, &pool.lock);
  }
  pthread_mutex_unlock(&pool.lock);
  pthread_mutex_unlock(&pool_owner);
}

/* ------------------------------------------------------------- packing */

/* Element (i, k) of op(A) and (k, j) of op(B). */
#define AT(i, k) (ta ? A[(size_t)(k) * lda + (i)] : A[(size_t)(i) * lda + (k)])
#define BT(k, j) (tb ? B[(size_t)(j) * ldb + (k)] : B[(size_t)(k) * ldb + (j)])

/* op(A)[i0:i0+mc][k0:k0+kc] as MR-row panels: [panel][k][MR], zero-padded. */
static void pack_a(int ta, const float *A, int lda, int i0, int mc, int k0,
                   int kc, float *out) {
  for (int p = 0; p < mc; p += MR) {
    int rows = mc - p < MR ? mc - p : MR;
    for (int k = 0; k < kc; ++k) {
      for (int r = 0; r < MR; ++r) {
        *out++ = r < rows ? AT(i0 + p + r, k0 + k) : 0.0f;
      }
    }
  }
}

/* op(B)[k0:k0+kc][0:N] as NR-column panels: [panel][k][NR], zero-padded. */
static void pack_b(int tb, const float *B, int ldb, int k0, int kc, int N,
                   float *out) {
  for (int j = 0; j < N; j += NR) {
    int cols = N - j < NR ? N - j : NR;
    if (!tb && cols == NR) {
      for (int k = 0; k < kc; ++k) {
        memcpy(out, B + (size_t)(k0 + k) * ldb + j, NR * sizeof(float));
        out += NR;
      }
      continue;
    }
    for (int k = 0; k < kc; ++k) {
      for (int c = 0; c < NR; ++c) *out++ = c < cols ? BT(k0 + k, j + c) : 0.0f;
    }
  }
}

/* ------------------------------------------------------- micro-kernels */

/* C[0:mr][0:nr] += a (panel [kc][MR]) · b (panel [kc][NR]). */
__attribute__((target("avx2,fma"))) static void kernel_avx2(
    int kc, const float *a, const float *b, float *C, int ldc, int mr, int nr) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    __m256 b0 = _mm256_loadu_ps(b);
    __m256 b1 = _mm256_loadu_ps(b + 8);
    __m256 x;
    x = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
    a += MR;
    b += NR;
  }
  __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                       {c30, c31}, {c40, c41}, {c50, c51}};
  if (mr == MR && nr == NR) {
    for (int r = 0; r < MR; ++r) {
      float *row = C + (size_t)r * ldc;
      _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(row), acc[r][0]));
      _mm256_storeu_ps(row + 8, _mm256_add_ps(_mm256_loadu_ps(row + 8), acc[r][1]));
    }
    return;
  }
  float tile[MR][NR];
  for (int r = 0; r < MR; ++r) {
    _mm256_storeu_ps(tile[r], acc[r][0]);
    _mm256_storeu_ps(tile[r] + 8, acc[r][1]);
  }
  for (int r = 0; r < mr; ++r) {
    for (int c = 0; c < nr; ++c) C[(size_t)r * ldc + c] += tile[r][c];
  }
}

static void kernel_portable(int kc, const float *a, const float *b, float *C,
                            int ldc, int mr, int nr) {
  float acc[MR][NR] = {{0}};
  for (int k = 0; k < kc; ++k) {
    for (int r = 0; r < MR; ++r) {
      float x = a[r];
      for (int c = 0; c < NR; ++c) acc[r][c] += x * b[c];
    }
    a += MR;
    b += NR;
  }
  for (int r = 0; r < mr; ++r) {
    for (int c = 0; c < nr; ++c) C[(size_t)r * ldc + c] += acc[r][c];
  }
}

/* ---------------------------------------------------------------- gemm */

typedef struct gemm_job {
  int ta, tb, M, N, K, lda, ldb, ldc;
  const float *A, *B;
  float *C;
  const float *packed_b; /* the current KC block of op(B), all panels */
  int k0, kc;
  int rows_per_task;     /* tasks split rows ... */
  int panels_per_task;   /* ... or, for short matrices, NR-column panels */
  int avx2;              /* the caller's kernel choice */
} gemm_job;

/* A thread-local growable buffer (packing); NULL on allocation failure. */
typedef struct scratch {
  float *data;
  size_t capacity;
} scratch;

static float *reserve(scratch *s, size_t floats) {
  if (floats > s->capacity) {
    free(s->data);
    s->data = aligned_alloc(64, ((floats * sizeof(float) + 63) / 64) * 64);
    s->capacity = s->data ? floats : 0;
  }
  return s->data;
}

static _Thread_local scratch a_scratch, b_scratch;

static void gemm_task(void *ctx, int task) {
  gemm_job *j = ctx;
  int row_begin = 0, row_end = j->M, col_begin = 0, col_end = j->N;
  if (j->panels_per_task > 0) {
    col_begin = task * j->panels_per_task * NR;
    col_end = col_begin + j->panels_per_task * NR < j->N ? col_begin + j->panels_per_task * NR : j->N;
  } else {
    row_begin = task * j->rows_per_task;
    row_end = row_begin + j->rows_per_task < j->M ? row_begin + j->rows_per_task : j->M;
  }
  void (*kernel)(int, const float *, const float *, float *, int, int, int) =
      j->avx2 ? kernel_avx2 : kernel_portable;
  float *pa = reserve(&a_scratch, (size_t)(MC + MR) * KC);
  if (!pa) return;
  for (int i0 = row_begin; i0 < row_end; i0 += MC) {
    int mc = row_end - i0 < MC ? row_end - i0 : MC;
    pack_a(j->ta, j->A, j->lda, i0, mc, j->k0, j->kc, pa);
    for (int jp = col_begin; jp < col_end; jp += NR) {
      int nr = j->N - jp < NR ? j->N - jp : NR;
      const float *pb = j->packed_b + (size_t)(jp / NR) * j->kc * NR;
      for (int ip = 0; ip < mc; ip += MR) {
        int mr = mc - ip < MR ? mc - ip : MR;
        kernel(j->kc, pa + (size_t)(ip / MR) * j->kc * MR, pb,
               j->C + (size_t)(i0 + ip) * j->ldc + jp, j->ldc, mr, nr);
      }
    }
  }
}

void pk_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  for (int i = 0; i < M; ++i) {
    float *row = C + (size_t)i * ldc;
    if (beta == 0.0f) {
      memset(row, 0, (size_t)N * sizeof(float));
    } else if (beta != 1.0f) {
      for (int c = 0; c < N; ++c) row[c] *= beta;
    }
  }
  if (K <= 0) return;
  int panels = (N + NR - 1) / NR;
  float *packed_b = reserve(&b_scratch, (size_t)panels * NR * KC);
  if (!packed_b) return;
  int threads = pk_threads();
  gemm_job job = {ta, tb, M, N, K, lda, ldb, ldc, A, B, C, packed_b, 0, 0, M, 0, pk_has_avx2_fma()};
  int tasks = 1;
  if ((double)M * N * K >= 200000.0 && threads > 1) {
    if (M >= 4 * MC || panels < threads) {
      /* Tall: split rows in multiples of MR. */
      int per_task = (M + threads - 1) / threads;
      per_task = (per_task + MR - 1) / MR * MR;
      job.rows_per_task = per_task;
      tasks = (M + per_task - 1) / per_task;
    } else {
      /* Short (decoding): split columns, so B is packed once and shared. */
      job.panels_per_task = (panels + threads - 1) / threads;
      tasks = (panels + job.panels_per_task - 1) / job.panels_per_task;
    }
  }
  for (int k0 = 0; k0 < K; k0 += KC) {
    job.k0 = k0;
    job.kc = K - k0 < KC ? K - k0 : KC;
    pack_b(tb, B, ldb, k0, job.kc, N, packed_b);
    pk_parallel_for(tasks, gemm_task, &job);
  }
}

/* ------------------------------------------------------------ FMA peak */

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 10 independent chains of 8 lanes hide the FMA latency; returns flops. */
__attribute__((target("avx2,fma"))) static double fma_loop_avx2(long iterations, float *sink) {
  __m256 a0 = _mm256_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0;
  __m256 a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  for (long i = 0; i < iterations; ++i) {
    a0 = _mm256_fmadd_ps(a0, x, y); a1 = _mm256_fmadd_ps(a1, x, y);
    a2 = _mm256_fmadd_ps(a2, x, y); a3 = _mm256_fmadd_ps(a3, x, y);
    a4 = _mm256_fmadd_ps(a4, x, y); a5 = _mm256_fmadd_ps(a5, x, y);
    a6 = _mm256_fmadd_ps(a6, x, y); a7 = _mm256_fmadd_ps(a7, x, y);
    a8 = _mm256_fmadd_ps(a8, x, y); a9 = _mm256_fmadd_ps(a9, x, y);
  }
  __m256 sum = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(_mm256_add_ps(a6, a7), _mm256_add_ps(a8, a9))));
  float out[8];
  _mm256_storeu_ps(out, sum);
  *sink += out[0];
  return (double)iterations * 10 * 8 * 2;
}

static double fma_loop_portable(long iterations, float *sink) {
  float a[40];
  for (int i = 0; i < 40; ++i) a[i] = 1.0f;
  for (long i = 0; i < iterations; ++i) {
    for (int k = 0; k < 40; ++k) a[k] = a[k] * 0.999999f + 1e-7f;
  }
  for (int i = 0; i < 40; ++i) *sink += a[i];
  return (double)iterations * 40 * 2;
}

typedef struct peak_job {
  long iterations;
  double flops[16];
  float sink[16];
} peak_job;

static void peak_task(void *ctx, int task) {
  peak_job *j = ctx;
  j->flops[task] = pk_has_avx2_fma() ? fma_loop_avx2(j->iterations, &j->sink[task])
                                     : fma_loop_portable(j->iterations, &j->sink[task]);
}

double pk_fma_peak_gflops(int threads, double seconds) {
  if (threads < 1) threads = 1;
  if (threads > 16) threads = 16;
  int saved = pk_threads();
  pk_set_threads(threads);
  peak_job job;
  memset(&job, 0, sizeof job);
  job.iterations = 1000000;
  double best = 0;
  double start = seconds_now();
  while (seconds_now() - start < seconds) {
    double t0 = seconds_now();
    pk_parallel_for(threads, peak_task, &job);
    double elapsed = seconds_now() - t0;
    double flops = 0;
    for (int t = 0; t < threads; ++t) flops += job.flops[t];
    if (flops / elapsed > best) best = flops / elapsed;
  }
  pk_set_threads(saved);
  return best / 1e9;
}
