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
#include <unistd.h>

#define MR 6
#define NR 16
#define KC 256
#define MC 96

/* ------------------------------------------------------------ dispatch */

static int use_avx2 = -1;
static int forced_portable = 0;

int pk_has_avx2_fma(void) {
  if (use_avx2 < 0) {
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  return use_avx2 && !forced_portable;
}

void pk_force_portable(int portable) { forced_portable = portable; }

/* ---------------------------------------------------------- thread pool */

#include "internal.h"

/* Workers wait for a new epoch, take task indices from `next`, and count
 * themselves in `busy` while they may touch the job; the caller returns only
 * when every task is finished and no worker is busy, so a slow worker can
 * never run into the next job's state. */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  pthread_cond_t done;
  pthread_t workers[16];
  int started;      /* workers running */
  int wanted;       /* threads to use, including the caller */
  uint64_t epoch;   /* bumped for each job */
  int busy;         /* workers inside run_tasks */
  pk_task_fn fn;
  void *ctx;
  int tasks;
  atomic_int next;  /* next task index to take */
  atomic_int finished;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static void run_tasks(void) {
  for (;;) {
    int task = atomic_fetch_add(&pool.next, 1);
    if (task >= pool.tasks) break;
    pool.fn(pool.ctx, task);
    atomic_fetch_add(&pool.finished, 1);
  }
}

static void *worker(void *arg) {
  (void)arg;
  uint64_t seen = 0;
  for (;;) {
    pthread_mutex_lock(&pool.lock);
    while (pool.epoch == seen) pthread_cond_wait(&pool.wake, &pool.lock);
    seen = pool.epoch;
    pool.busy++;
    pthread_mutex_unlock(&pool.lock);
    run_tasks();
    pthread_mutex_lock(&pool.lock);
    pool.busy--;
    pthread_cond_broadcast(&pool.done);
    pthread_mutex_unlock(&pool.lock);
  }
  return NULL;
}

int pk_threads(void) {
  if (pool.wanted == 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    pool.wanted = cpus < 1 ? 1 : cpus > 16 ? 16 : (int)cpus;
  }
  return pool.wanted;
}

void pk_set_threads(int threads) {
  pool.wanted = threads < 1 ? 1 : threads > 16 ? 16 : threads;
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
  pool.fn = fn;
  pool.ctx = ctx;
  pool.tasks = tasks;
  atomic_store(&pool.finished, 0);
  atomic_store(&pool.next, 0);
  pool.epoch++;
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.lock);
  run_tasks();
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
  int rows_per_task;
} gemm_job;

/* Thread-local packing buffer for A. */
static _Thread_local float *a_buffer;
static _Thread_local size_t a_capacity;

static float *a_scratch(size_t floats) {
  if (floats > a_capacity) {
    free(a_buffer);
    a_buffer = aligned_alloc(64, ((floats * sizeof(float) + 63) / 64) * 64);
    a_capacity = a_buffer ? floats : 0;
  }
  return a_buffer;
}

static void gemm_rows(void *ctx, int task) {
  gemm_job *j = ctx;
  int begin = task * j->rows_per_task;
  int end = begin + j->rows_per_task < j->M ? begin + j->rows_per_task : j->M;
  void (*kernel)(int, const float *, const float *, float *, int, int, int) =
      pk_has_avx2_fma() ? kernel_avx2 : kernel_portable;
  float *pa = a_scratch((size_t)(MC + MR) * KC);
  if (!pa) return;
  for (int i0 = begin; i0 < end; i0 += MC) {
    int mc = end - i0 < MC ? end - i0 : MC;
    pack_a(j->ta, j->A, j->lda, i0, mc, j->k0, j->kc, pa);
    for (int jp = 0; jp < j->N; jp += NR) {
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
  float *packed_b = aligned_alloc(64, ((size_t)panels * NR * KC * sizeof(float) + 63) / 64 * 64);
  if (!packed_b) return;
  int threads = pk_threads();
  /* Split rows in multiples of MR, no more tasks than threads. */
  int per_task = (M + threads - 1) / threads;
  per_task = (per_task + MR - 1) / MR * MR;
  if (per_task < MR) per_task = MR;
  int tasks = (M + per_task - 1) / per_task;
  /* Tiny products are not worth waking the pool. */
  if ((double)M * N * K < 200000.0) {
    per_task = M;
    tasks = 1;
  }
  gemm_job job = {ta, tb, M, N, K, lda, ldb, ldc, A, B, C, packed_b, 0, 0, per_task};
  for (int k0 = 0; k0 < K; k0 += KC) {
    job.k0 = k0;
    job.kc = K - k0 < KC ? K - k0 : KC;
    pack_b(tb, B, ldb, k0, job.kc, N, packed_b);
    pk_parallel_for(tasks, gemm_rows, &job);
  }
  free(packed_b);
}
