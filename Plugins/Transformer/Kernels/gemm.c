/*
 * gemm.c — single-precision matrix multiply with runtime dispatch, and the
 * thread pool the kernels share.
 *
 * Blocked GEMM in the BLIS style: op(B) is packed into KC x NR panels and
 * op(A) into MC x KC blocks of MR-row panels; a register micro-kernel
 * computes an MR x NR tile (6 x 16: 12 AVX registers of 8 floats) from a
 * packed A panel and a packed B panel, or with AVX-512 a 12 x 32 tile from
 * two of each (24 registers of 16 floats). The AVX-512 and AVX2+FMA
 * micro-kernels are compiled for their targets only and chosen at run
 * time; the portable one is plain C. The two vector kernels give the same
 * bits: each element of C is the same chain of FMAs in either.
 */
#include "internal.h"
#include "prism_kernels.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MR 6
#define NR 16
#define KC 256
#define MC 96
#define ROW_TASKS_PER_THREAD 4 /* a row split's tasks per thread when no task packs B (gemm) */
#define OWN_PACK_MAX_FLOATS (256u << 10) /* all of op(B) packed by each thread (own_packed_b): 1 MB */
#define KSPLIT_MAX_FLOATS (4u << 20) /* the partials of a product split along K (ksplit): 16 MB */


/* ------------------------------------------------------------ dispatch */

static atomic_int cpu_avx2 = -1;   /* -1 until the CPU was asked */
static atomic_int cpu_avx512 = -1;
/* Per thread, so one model's choice never changes another's kernels; a GEMM
 * takes the choice of the thread that calls it to every pool worker. */
static _Thread_local int forced_portable = 0;
static _Thread_local int forced_avx2 = 0;

static void ask_cpu(void) {
  if (atomic_load_explicit(&cpu_avx512, memory_order_acquire) >= 0) return;
  __builtin_cpu_init();
  int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  atomic_store_explicit(&cpu_avx2, avx2, memory_order_relaxed);
  atomic_store_explicit(&cpu_avx512, avx2 && __builtin_cpu_supports("avx512f"), memory_order_release);
}

int pk_has_avx2_fma(void) {
  ask_cpu();
  return atomic_load_explicit(&cpu_avx2, memory_order_relaxed) && !forced_portable;
}

int pk_has_avx512(void) {
  ask_cpu();
  return atomic_load_explicit(&cpu_avx512, memory_order_relaxed) && !forced_portable && !forced_avx2;
}

const char *pk_kernels_name(void) {
  static const char *const names[] = {"portable", "AVX2+FMA", "AVX-512"};
  return names[pk_kernel_level()];
}

int pk_force_portable(int portable) {
  int previous = forced_portable;
  forced_portable = portable;
  return previous;
}

int pk_force_avx2(int avx2) {
  int previous = forced_avx2;
  forced_avx2 = avx2;
  return previous;
}

/* ---------------------------------------------------------- thread pool */

/* A job is published without a lock: its function, context and task count
 * into the slot of its epoch's parity, then the epoch, which a spinning
 * worker sees before it reads that slot. The caller runs task 0; the
 * others are claimed from `claim`, which holds the job's epoch in its high
 * 32 bits and the next task index in its low 32 bits (from 1), so a claim
 * is valid only for the job it was made for. A worker late enough to read a slot being rewritten (job E's slot
 * is rewritten by job E + 2) claims nothing: job E + 1 has replaced the
 * epoch in `claim`. With one slot, a worker could read job E + 1's task
 * count for job E while `claim` still held E, and claim a task of E past
 * its end (kernel_stress: "a task did not run exactly once"). (An
 * earlier version kept a bare `next` counter that each job reset: a worker
 * that woke for a job after its caller had already finished and returned
 * could then take a stale index from the *next* job's counter just before
 * the reset, and run one of its tasks twice — attention then summed its
 * output twice. Caught by Tests/Fixtures/kernel_stress.c.) `finished`
 * counts tasks whose function has returned, so once it reaches the task
 * count no task of the job runs or will run, and the caller returns.
 * Only sleeping goes through `lock`: a worker that spun SPIN_ROUNDS
 * without a job counts itself in `sleepers` and waits on `wake`; a caller
 * that spun as long for its workers sets `waiting` and waits on `done`.
 * Each side announces itself before checking the other's progress, a
 * seq_cst operation or fence between the two, and the other checks the
 * announcement after making progress, so a wake-up is never lost (a
 * caller's may come after its own task: pk_parallel_for, Decisions #68).
 * (Publishing and joining under `lock` cost a median 1.8-2.8 us per
 * fork-join of two empty tasks: a worker that saw the epoch blocked on the
 * caller's lock, and the caller on the worker's.) */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  pthread_cond_t done;
  pthread_t workers[16];
  /* Read by every caller, written almost never: on a line of their own,
   * which no worker polls (beside `epoch`, a caller's read of `wanted`
   * missed its cache on every job, the spinning worker holding the line). */
  _Alignas(64) atomic_int started; /* workers running (written under pool_owner) */
  atomic_int wanted;         /* threads to use, including the caller; 0 = not set */
  _Alignas(64) atomic_uint epoch; /* bumped for each job, after the job is written */
  struct {
    _Atomic(pk_task_fn) fn;
    _Atomic(void *) ctx;
    atomic_int tasks;
  } job[2];                  /* the job of epoch e in job[e & 1] */
  atomic_uint_fast64_t claim; /* (epoch << 32) | next task index */
  atomic_int finished;
  atomic_int sleepers;       /* workers asleep on `wake` (or about to be) */
  atomic_int queued;         /* background items waiting for a thread (pk_post) */
  atomic_uint posts;         /* background items posted so far: their order */
  atomic_int waiting;        /* the caller asleep on `done` (or about to be) */
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

/* Background items (pk_post, pk_wait): one function call each, run by a
 * worker with nothing else to do, or by the thread that waits for it. An
 * item's slot lives in the pool, so a worker that looks at a slot late
 * touches only pool memory: it owns an item only by moving its state from
 * QUEUED to RUNNING. The item runs with its poster's kernel choice and
 * test hook, on one thread (pk_threads() is 1 on a thread running one:
 * its products take the one-task path, packing each operand once). */
#define BG_SLOTS 8

/* A thread's kernel choice and test hook, handed to work another thread
 * runs for it (background items, pk_parallel_solo's tasks). */
struct settings {
  int portable, avx2;  /* forced_portable, forced_avx2 */
  size_t fail_above;   /* pk_test_fail_reservations_above */
};
enum { BG_FREE, BG_TAKEN, BG_QUEUED, BG_RUNNING, BG_DONE };
static struct {
  atomic_int state;
  atomic_uint order;          /* pool.posts when posted: workers take the oldest */
  _Atomic(pk_task_fn) fn;
  _Atomic(void *) ctx;
  struct settings poster;     /* its poster's */
  atomic_int failures;        /* products that could not get their scratch */
} background[BG_SLOTS];

static _Thread_local int running_background; /* pk_threads() is 1 while set */
static _Thread_local int gemm_failures;      /* see pk_gemm_failures */
static _Thread_local size_t fail_above = SIZE_MAX; /* see pk_test_fail_reservations_above */

static struct settings this_threads_settings(void) {
  return (struct settings){forced_portable, forced_avx2, fail_above};
}

/* fn(ctx, task) on this thread as the thread whose settings `as` are
 * would run it: with its kernel choice and test hook; on one thread if
 * `solo` (pk_threads() 1), else with the pool. Returns the products that
 * could not get their scratch, which this thread does not count. */
static int run_as(struct settings as, int solo, pk_task_fn fn, void *ctx, int task) {
  struct settings mine = this_threads_settings();
  int failures = gemm_failures, was = running_background;
  forced_portable = as.portable, forced_avx2 = as.avx2, fail_above = as.fail_above;
  running_background = solo;
  fn(ctx, task);
  int theirs = gemm_failures - failures;
  forced_portable = mine.portable, forced_avx2 = mine.avx2, fail_above = mine.fail_above;
  gemm_failures = failures, running_background = was;
  return theirs;
}

/* Runs item `slot`, whose state this thread has just set to RUNNING, as
 * its poster would have; on one thread if `solo` (a worker), else with
 * the pool (its waiter). */
static void run_background(int slot, int solo) {
  pk_task_fn fn = atomic_load_explicit(&background[slot].fn, memory_order_relaxed);
  void *ctx = atomic_load_explicit(&background[slot].ctx, memory_order_relaxed);
  int failures = run_as(background[slot].poster, solo, fn, ctx, 0);
  atomic_store_explicit(&background[slot].failures, failures, memory_order_relaxed);
  atomic_store_explicit(&background[slot].state, BG_DONE, memory_order_release);
}

/* Takes and runs the oldest queued item; 0 when there was none. */
static int run_oldest_background(void) {
  while (atomic_load(&pool.queued) > 0) {
    int best = -1;
    unsigned best_order = 0;
    for (int i = 0; i < BG_SLOTS; ++i) {
      if (atomic_load_explicit(&background[i].state, memory_order_relaxed) != BG_QUEUED) continue;
      unsigned order = atomic_load_explicit(&background[i].order, memory_order_relaxed);
      if (best < 0 || (int)(order - best_order) < 0) best = i, best_order = order;
    }
    if (best < 0) return 0; /* taken meanwhile */
    int queued = BG_QUEUED;
    if (atomic_compare_exchange_strong_explicit(&background[best].state, &queued, BG_RUNNING,
                                                memory_order_acquire, memory_order_relaxed)) {
      atomic_fetch_sub(&pool.queued, 1);
      run_background(best, 1);
      return 1;
    }
  }
  return 0;
}

static void *worker(void *arg) {
  (void)arg;
  unsigned seen = 0;
  for (;;) {
    for (int spin = 0; spin < SPIN_ROUNDS && atomic_load(&pool.epoch) == seen && atomic_load(&pool.queued) == 0;
         ++spin) {
      __builtin_ia32_pause();
    }
    if (atomic_load(&pool.epoch) == seen && atomic_load(&pool.queued) == 0) {
      pthread_mutex_lock(&pool.lock);
      atomic_fetch_add(&pool.sleepers, 1);
      while (atomic_load(&pool.epoch) == seen && atomic_load(&pool.queued) == 0)
        pthread_cond_wait(&pool.wake, &pool.lock);
      atomic_fetch_sub(&pool.sleepers, 1);
      pthread_mutex_unlock(&pool.lock);
    }
    /* A background item first: its poster goes on with work that does
     * not need it, and takes it itself if no worker has. */
    if (run_oldest_background() || atomic_load(&pool.epoch) == seen) continue;
    seen = atomic_load(&pool.epoch);
    run_tasks(seen, atomic_load_explicit(&pool.job[seen & 1].fn, memory_order_relaxed),
              atomic_load_explicit(&pool.job[seen & 1].ctx, memory_order_relaxed),
              atomic_load_explicit(&pool.job[seen & 1].tasks, memory_order_relaxed));
    if (atomic_load(&pool.waiting)) {
      pthread_mutex_lock(&pool.lock);
      pthread_cond_broadcast(&pool.done);
      pthread_mutex_unlock(&pool.lock);
    }
  }
  return NULL;
}

int pk_threads(void) {
  if (running_background) return 1;
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

static void wake_sleepers(void) {
  pthread_mutex_lock(&pool.lock);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.lock);
}

/* One caller at a time owns the pool; others (another instance used from
 * another thread) run their tasks inline rather than wait. */
static pthread_mutex_t pool_owner = PTHREAD_MUTEX_INITIALIZER;
static unsigned owner_epoch; /* pool.epoch as its owner last set it (under pool_owner) */

/* Runs fn(ctx, 0..tasks-1) on the pool and the calling thread; returns
 * when all are done. Safe to call from several threads at once. The
 * caller runs task 0, so with two threads a job of two tasks runs its
 * first on the caller and, unless the worker is late, its second on the
 * worker: see pk_parallel_ranges. */
void pk_parallel_for(int tasks, pk_task_fn fn, void *ctx) {
  int threads = pk_threads();
  if (tasks <= 1 || threads <= 1 || pthread_mutex_trylock(&pool_owner) != 0) {
    for (int t = 0; t < tasks; ++t) fn(ctx, t);
    return;
  }
  int started = atomic_load_explicit(&pool.started, memory_order_relaxed);
  while (started < threads - 1 && started < 15) { /* pool_owner held: one caller here */
    if (pthread_create(&pool.workers[started], NULL, worker, NULL) != 0) break;
    pthread_detach(pool.workers[started]);
    atomic_store_explicit(&pool.started, ++started, memory_order_relaxed);
  }
  unsigned epoch = ++owner_epoch;
  atomic_store_explicit(&pool.job[epoch & 1].fn, fn, memory_order_relaxed);
  atomic_store_explicit(&pool.job[epoch & 1].ctx, ctx, memory_order_relaxed);
  atomic_store_explicit(&pool.job[epoch & 1].tasks, tasks, memory_order_relaxed);
  /* (The last job's tasks have all returned: no increment of `finished`
   * can follow this reset.) */
  atomic_store_explicit(&pool.finished, 0, memory_order_relaxed);
  /* Task 0 is the caller's: the workers claim from 1. */
  atomic_store_explicit(&pool.claim, ((uint_fast64_t)epoch << 32) | 1u, memory_order_relaxed);
  /* Published by a release store, which a worker's load of the epoch
   * acquires: the caller goes on to task 0 at once. A seq_cst store here
   * (a locked instruction) held it until the line came back from the
   * spinning worker, and the stores before it were locked ones too. */
  atomic_store_explicit(&pool.epoch, epoch, memory_order_release);
  /* A worker asleep (or going to sleep) is woken now if this load sees
   * it, for sure after task 0 (wake_sleepers). */
  if (atomic_load_explicit(&pool.sleepers, memory_order_relaxed) > 0) wake_sleepers();
  fn(ctx, 0);
  /* A worker counts itself in `sleepers` (seq_cst) before it checks the
   * epoch; with this fence between the epoch's store and the load of
   * `sleepers`, either it saw the new epoch or this load sees it. Its
   * wake-up may come a task late: a worker that went to sleep has been
   * idle for SPIN_ROUNDS. */
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&pool.sleepers, memory_order_relaxed) > 0) wake_sleepers();
  atomic_fetch_add(&pool.finished, 1);
  run_tasks(epoch, fn, ctx, tasks);
  for (int spin = 0; spin < SPIN_ROUNDS && atomic_load(&pool.finished) < tasks; ++spin) {
    __builtin_ia32_pause();
  }
  if (atomic_load(&pool.finished) < tasks) {
    atomic_store(&pool.waiting, 1);
    pthread_mutex_lock(&pool.lock);
    while (atomic_load(&pool.finished) < tasks) pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    atomic_store(&pool.waiting, 0);
  }
  pthread_mutex_unlock(&pool_owner);
}

int pk_post(pk_task_fn fn, void *ctx) {
  if (pk_threads() < 2 || atomic_load_explicit(&pool.started, memory_order_relaxed) == 0) {
    fn(ctx, 0);
    return -1;
  }
  for (int i = 0; i < BG_SLOTS; ++i) {
    int free_slot = BG_FREE;
    if (!atomic_compare_exchange_strong(&background[i].state, &free_slot, BG_TAKEN)) continue;
    atomic_store_explicit(&background[i].fn, fn, memory_order_relaxed);
    atomic_store_explicit(&background[i].ctx, ctx, memory_order_relaxed);
    background[i].poster = this_threads_settings();
    atomic_store_explicit(&background[i].order, atomic_fetch_add(&pool.posts, 1), memory_order_relaxed);
    atomic_store_explicit(&background[i].state, BG_QUEUED, memory_order_release);
    /* Counted before the sleepers are checked, as a job's epoch is: a
     * worker going to sleep checks `queued` after counting itself. */
    atomic_fetch_add(&pool.queued, 1);
    if (atomic_load(&pool.sleepers) > 0) wake_sleepers();
    return i;
  }
  fn(ctx, 0); /* every slot in use */
  return -1;
}

void pk_wait(int item) {
  if (item < 0) return;
  int queued = BG_QUEUED;
  if (atomic_compare_exchange_strong_explicit(&background[item].state, &queued, BG_RUNNING, memory_order_acquire,
                                              memory_order_relaxed)) {
    /* No worker took it: run here, with the pool. */
    atomic_fetch_sub(&pool.queued, 1);
    run_background(item, 0);
  } else {
    while (atomic_load_explicit(&background[item].state, memory_order_acquire) != BG_DONE) __builtin_ia32_pause();
  }
  gemm_failures += atomic_load_explicit(&background[item].failures, memory_order_relaxed);
  atomic_store_explicit(&background[item].state, BG_FREE, memory_order_release);
}

/* pk_parallel_solo: fn(ctx, 0..tasks-1) on the pool, each task run as its
 * caller would run it on one thread: with the caller's kernel choice and
 * test hook, pk_threads() 1 inside (its products one task, its
 * pk_parallel_for inline), its products' scratch failures counted in the
 * caller's pk_gemm_failures. */
typedef struct solo_job {
  pk_task_fn fn;
  void *ctx;
  struct settings caller;
  atomic_int failures;
} solo_job;

static void solo_task(void *ctx, int task) {
  solo_job *j = ctx;
  atomic_fetch_add_explicit(&j->failures, run_as(j->caller, 1, j->fn, j->ctx, task), memory_order_relaxed);
}

void pk_parallel_solo(int tasks, pk_task_fn fn, void *ctx) {
  solo_job job = {.fn = fn, .ctx = ctx, .caller = this_threads_settings()};
  atomic_init(&job.failures, 0);
  pk_parallel_for(tasks, solo_task, &job);
  gemm_failures += atomic_load_explicit(&job.failures, memory_order_relaxed);
}

/* pk_parallel_ranges: one pool task per thread, each owning a contiguous
 * range of the job's tasks, which it takes from the front; a thread done
 * with its own range takes tasks from the back of the others' (a thread
 * the VM stalled for a while then costs no idle wait on the other). Each
 * range is (front << 32 | back) in one atomic word, so the owner and a
 * thief never take the same task. */
typedef struct ranges_job {
  pk_task_fn fn;
  void *ctx;
  int parts;
  atomic_uint_fast64_t range[16];
} ranges_job;

/* Takes the next task of range `part` from the front (or, thieving, from
 * the back); -1 when none is left. */
static int range_take(ranges_job *j, int part, int from_back) {
  uint_fast64_t current = atomic_load(&j->range[part]);
  for (;;) {
    uint32_t front = (uint32_t)(current >> 32), back = (uint32_t)current;
    if (front >= back) return -1;
    uint_fast64_t next = from_back ? current - 1 : current + ((uint_fast64_t)1 << 32);
    if (atomic_compare_exchange_weak(&j->range[part], &current, next)) return (int)(from_back ? back - 1 : front);
  }
}

static void ranges_task(void *ctx, int part) {
  ranges_job *j = ctx;
  for (int t; (t = range_take(j, part, 0)) >= 0;) j->fn(j->ctx, t);
  for (int other = 1; other < j->parts; ++other)
    for (int t; (t = range_take(j, (part + other) % j->parts, 1)) >= 0;) j->fn(j->ctx, t);
}

void pk_parallel_ranges(int tasks, pk_task_fn fn, void *ctx) {
  int threads = pk_threads();
  if (threads <= 1 || tasks <= 1) {
    for (int t = 0; t < tasks; ++t) fn(ctx, t);
    return;
  }
  ranges_job job = {.fn = fn, .ctx = ctx, .parts = threads < tasks ? threads : tasks};
  for (int p = 0; p < job.parts; ++p) {
    uint_fast64_t front = (uint_fast64_t)((long)tasks * p / job.parts), back = (uint_fast64_t)((long)tasks * (p + 1) / job.parts);
    atomic_init(&job.range[p], front << 32 | back);
  }
  pk_parallel_for(job.parts, ranges_task, &job);
}

/* ------------------------------------------------------------- packing */

/* Element (i, k) of op(A) and (k, j) of op(B). */
#define AT(i, k) (ta ? A[(size_t)(k) * lda + (i)] : A[(size_t)(i) * lda + (k)])
#define BT(k, j) (tb ? B[(size_t)(j) * ldb + (k)] : B[(size_t)(k) * ldb + (j)])

/* op(A)[i0:i0+rows][k0:k0+kc] as one MR-row panel [k][MR], zero-padded. */
static void pack_a_panel(int ta, const float *A, int lda, int i0, int rows, int k0,
                         int kc, float *out) {
  if (rows == MR && ta) {
    for (int k = 0; k < kc; ++k, out += MR) memcpy(out, A + (size_t)(k0 + k) * lda + i0, MR * sizeof(float));
    return;
  }
  if (rows == MR) {
    const float *r0 = A + (size_t)i0 * lda + k0;
    for (int k = 0; k < kc; ++k) {
      for (int r = 0; r < MR; ++r) *out++ = r0[(size_t)r * lda + k];
    }
    return;
  }
  for (int k = 0; k < kc; ++k) {
    for (int r = 0; r < MR; ++r) *out++ = r < rows ? AT(i0 + r, k0 + k) : 0.0f;
  }
}

/* Packed panels of a task's own buffers lie one cache line further apart
 * than their size: at 256 x 16 floats (16 KB) or 256 x 6 (6 KB) apart,
 * the rows a packing loop writes across all panels at once fell into one
 * or two L1 sets (2048 x 512 packed a row at a time at 19.6 GB/s, 24.5
 * with the line; one thread). */
#define PANEL_PAD 16

/* Packing a source a row at a time requests the row PACK_AHEAD rows on
 * (into L2): the weight gradients' operands come from L3 or memory, and
 * the hardware prefetchers did not keep up (128 x 384 x 2048 from 16
 * operand sets: 62% of the FMA peak at one thread, 67% this way; at two,
 * three of the four weight gradients' shapes +4.5..6 points, 128 x 128 x
 * 2048 unchanged). */
#define PACK_AHEAD 8

/* The distance between packed A groups (B panels) of a KC block of kc. */
static size_t a_stride(int kc) { return (size_t)MR * kc + PANEL_PAD; }
static size_t b_stride(int kc) { return (size_t)NR * kc + PANEL_PAD; }

/* Row groups g0..g1-1 of op(A)[0:M][k0:k0+kc] as MR-row panels, group g
 * at out + (g - g0) * a_stride(kc). A transposed (the weight gradients'
 * Aᵀ) is read a source row at a time across every group, as pack_b reads
 * B, instead of group by group down the rows. */
static void pack_a_groups(int ta, const float *A, int lda, int M, int g0, int g1, int k0, int kc,
                          float *out) {
  const size_t stride = a_stride(kc);
  int whole = g1 * MR <= M ? g1 - g0 : (M - g0 * MR) / MR;
  if (ta && whole > 0) {
    for (int k = 0; k < kc; ++k) {
      const float *src = A + (size_t)(k0 + k) * lda + (size_t)g0 * MR;
      if (k + PACK_AHEAD < kc)
        for (int q = 0; q < whole * MR; q += 16) _mm_prefetch((const char *)(src + (size_t)PACK_AHEAD * lda + q), _MM_HINT_T1);
      for (int q = 0; q < whole; ++q) memcpy(out + q * stride + (size_t)k * MR, src + q * MR, MR * sizeof(float));
    }
    out += whole * stride;
    g0 += whole;
  }
  for (int g = g0; g < g1; ++g, out += stride) {
    int rows = M - g * MR < MR ? M - g * MR : MR;
    pack_a_panel(ta, A, lda, g * MR, rows, k0, kc, out);
  }
}

/* One panel of Bᵀ: out[k][c] = src[c * ldb + k], 16 source rows (c) by kc,
 * 16 k at a time as a 16 x 16 transpose in registers (interleaving single
 * floats, then pairs, then moving 128-bit lanes twice). The scalar
 * loop stored a float at a time, 64 bytes apart: the input gradients'
 * weights, packed each pass, at 16-18 GB/s in cache, this way at 63-69
 * (one thread; the AVX2 form 50-53). Returns the k it reached (pack_b
 * copies the rest). */
__attribute__((target("avx512f"))) static int pack_bt_panel_avx512(const float *src, int ldb, int kc,
                                                                  float *out) {
  int k = 0;
  for (; k + 16 <= kc; k += 16) {
    __m512 r[16], t[16];
    for (int c = 0; c < 16; ++c) r[c] = _mm512_loadu_ps(src + (size_t)c * ldb + k);
    for (int c = 0; c < 16; c += 2) {
      t[c] = _mm512_unpacklo_ps(r[c], r[c + 1]);
      t[c + 1] = _mm512_unpackhi_ps(r[c], r[c + 1]);
    }
    for (int c = 0; c < 16; c += 4) {
      for (int h = 0; h < 2; ++h) {
        __m512d x = _mm512_castps_pd(t[c + h]), y = _mm512_castps_pd(t[c + 2 + h]);
        r[c + h] = _mm512_castpd_ps(_mm512_unpacklo_pd(x, y));
        r[c + 2 + h] = _mm512_castpd_ps(_mm512_unpackhi_pd(x, y));
      }
    }
    /* In each 128-bit lane L, r[4q + m] now holds rows 4q..4q+3 at
     * k + 4L + i, where i is m with 1 and 2 swapped. Gathering lane L of
     * q = 0..3 gives row k + 4L + i of the panel. */
    for (int i = 0; i < 4; ++i) {
      int m = i == 1 ? 2 : i == 2 ? 1 : i;
      __m512 a = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x88);       /* lanes 0, 2 of q = 0, 1 */
      __m512 b = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xDD);       /* lanes 1, 3 */
      __m512 c = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x88);  /* of q = 2, 3 */
      __m512 d = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xDD);
      _mm512_storeu_ps(out + (size_t)(k + i) * NR, _mm512_shuffle_f32x4(a, c, 0x88));
      _mm512_storeu_ps(out + (size_t)(k + 4 + i) * NR, _mm512_shuffle_f32x4(b, d, 0x88));
      _mm512_storeu_ps(out + (size_t)(k + 8 + i) * NR, _mm512_shuffle_f32x4(a, c, 0xDD));
      _mm512_storeu_ps(out + (size_t)(k + 12 + i) * NR, _mm512_shuffle_f32x4(b, d, 0xDD));
    }
  }
  return k;
}

/* pack_bt_panel_avx512 with eight lanes: 8 k at a time, the panel's two
 * halves of 8 source rows each an 8 x 8 transpose (transpose8). */
__attribute__((target("avx2"))) static int pack_bt_panel_avx2(const float *src, int ldb, int kc, float *out) {
  int k = 0;
  for (; k + 8 <= kc; k += 8) {
    for (int half = 0; half < 2; ++half) {
      __m256 r[8];
      for (int c = 0; c < 8; ++c) r[c] = _mm256_loadu_ps(src + (size_t)(8 * half + c) * ldb + k);
      transpose8(r);
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + (size_t)(k + i) * NR + 8 * half, r[i]);
    }
  }
  return k;
}

/* NR-column panels p0..p1-1 of op(B)[k0:k0+kc][0:N], zero-padded, panel
 * p at out + p * stride ([k][NR]; stride >= kc * NR). With `sum` (B
 * untransposed only), sum[j] += B[k][j] for those panels' columns, k in
 * order. `isa`: the caller's kernels, whose transposes it may use (the
 * same floats either way). */
static void pack_b(int tb, const float *B, int ldb, int k0, int kc, int N,
                   int p0, int p1, size_t stride, float *out, float *sum, int isa) {
  out += p0 * stride;
  /* Whole panels of an untransposed B a source row at a time across all
   * of them (panel by panel, each 64-byte piece came from another row:
   * 2048 x 128 packed in 95 us, 72 this way, one thread). */
  int whole = p1 * NR <= N ? p1 - p0 : (N - p0 * NR) / NR;
  if (!tb && whole > 0) {
    for (int k = 0; k < kc; ++k) {
      const float *src = B + (size_t)(k0 + k) * ldb + (size_t)p0 * NR;
      if (k + PACK_AHEAD < kc)
        for (int q = 0; q < whole; ++q) _mm_prefetch((const char *)(src + (size_t)PACK_AHEAD * ldb + q * NR), _MM_HINT_T1);
      for (int q = 0; q < whole; ++q) memcpy(out + q * stride + (size_t)k * NR, src + q * NR, NR * sizeof(float));
      if (sum)
        for (int c = 0; c < whole * NR; ++c) sum[p0 * NR + c] += src[c];
    }
    out += whole * stride;
    p0 += whole;
  }
  for (int j = p0 * NR; j < p1 * NR && j < N; j += NR) {
    int cols = N - j < NR ? N - j : NR;
    if (tb && cols == NR) {
      /* Bᵀ (the input gradients' weights): transposed in registers as far
       * as the vector forms go, then a source row per column, read along
       * k. The element loop with its edge test packed a 384 x 128 weight
       * in 46-52 us, this one in 26 (one thread). */
      const float *src = B + (size_t)j * ldb + k0;
      int done = isa == PK_AVX512 ? pack_bt_panel_avx512(src, ldb, kc, out)
                 : isa == PK_AVX2 ? pack_bt_panel_avx2(src, ldb, kc, out) : 0;
      for (int c = 0; c < NR; ++c)
        for (int k = done; k < kc; ++k) out[(size_t)k * NR + c] = src[(size_t)c * ldb + k];
      out += stride;
      continue;
    }
    for (int k = 0; k < kc; ++k) {
      for (int c = 0; c < NR; ++c) out[(size_t)k * NR + c] = c < cols ? BT(k0 + k, j + c) : 0.0f;
      if (sum && !tb)
        for (int c = 0; c < cols; ++c) sum[j + c] += B[(size_t)(k0 + k) * ldb + j + c];
    }
    out += stride;
  }
}

/* ------------------------------------------------- prefetch stream */

/* The cache lines of up to two blocks of rows (rows x row_lines lines,
 * row stride ld floats), requested into L2 one at a time from inside the
 * AVX-512 micro-kernel's k loop, every `every` steps, spread over a block's
 * tiles: what a task reads next from beyond L2 (the sources of the KC block
 * it packs next; the next rows of an A read in place), fetched while it
 * computes. Issued in bursts between tiles (a slice per panel step), such
 * requests filled the core's line-fill buffers, each for the L3's latency,
 * and the micro-kernel's own loads from L2 waited behind them: in a
 * profile, a third of the GEMMs' time outside the micro-kernel sat on
 * those prefetch instructions. With the stream, best of 12 interleaved
 * rounds over 16 operand sets, one thread: the weight gradients +6 to +10
 * points of the FMA peak, dX qkv +13, the MLP's second product +14; two
 * threads mostly +2 to +12 points; a training pass at one thread 4.6%
 * faster, at two no faster (its median 1-2.5% slower in busy minutes:
 * Documentation/Performance.md). */
typedef struct pf_region {
  const float *base;
  long ld;
  int rows, row_lines;
} pf_region;

typedef struct pf_stream {
  pf_region region[2];
  int regions, r, row, line;
  long left;  /* lines not requested yet */
  int every;  /* k steps between two requests */
} pf_stream;

static void pf_add(pf_stream *s, const float *base, long ld, int rows, int cols) {
  if (rows <= 0 || cols <= 0) return;
  pf_region *g = &s->region[s->regions++];
  g->base = base;
  g->ld = ld;
  g->rows = rows;
  g->row_lines = (int)(((uintptr_t)(base + cols) - ((uintptr_t)base & ~(uintptr_t)63) + 63) / 64);
  g->base = (const float *)((uintptr_t)base & ~(uintptr_t)63);
  s->left += (long)rows * g->row_lines;
}

static inline void pf_next(pf_stream *s) {
  const pf_region *g = &s->region[s->r];
  _mm_prefetch((const char *)(g->base + (size_t)s->row * g->ld) + (size_t)s->line * 64, _MM_HINT_T1);
  if (++s->line == g->row_lines) {
    s->line = 0;
    if (++s->row == g->rows) s->row = 0, ++s->r;
  }
  --s->left;
}

/* ------------------------------------------------------- micro-kernels */

/* Each micro-kernel computes the MR x NR tile C[0:mr][0:nr] from a
 * (element (r, k) at a[r*rsa + k*csa]) and b (row k at b + k*ldbk, NR
 * floats) into acc, then C = bias + acc (store, `in` NULL) or
 * C = (in + bias) + acc (accumulate: `in` is C itself, or the residual a
 * first KC block adds; row stride ldi), bias optional: the order of a
 * separate "fill with bias, then accumulate" pass, so fusing the bias
 * changes no bit. Edges come zero-padded. */

/* A tile's stored value: (C + bias) + acc when accumulating, else
 * acc + bias or acc, the order of a "fill with bias, then accumulate" pass. */
__attribute__((target("avx2,fma"))) static inline __m256 tile_out(__m256 acc, __m256 c, __m256 bias,
                                                                 int accumulate, int has_bias) {
  if (accumulate) return _mm256_add_ps(has_bias ? _mm256_add_ps(c, bias) : c, acc);
  return has_bias ? _mm256_add_ps(acc, bias) : acc;
}

__attribute__((target("avx2,fma"))) static void kernel_avx2(
    int kc, const float *a, long rsa, long csa, const float *b, long ldbk,
    float *C, int ldc, int mr, int nr, const float *in, long ldi, const float *bias) {
  const int accumulate = in != NULL;
  for (int r = 0; r < mr; ++r) {
    _mm_prefetch((const char *)(C + (size_t)r * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(C + (size_t)r * ldc + NR - 1), _MM_HINT_T0);
  }
  const float *a0 = a, *a1 = a + rsa, *a2 = a + 2 * rsa, *a3 = a + 3 * rsa;
  const float *a4 = a + 4 * rsa, *a5 = a + 5 * rsa;
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  long ka = 0;
  /* Row r's step: its broadcast of A times both vectors of B's row k. */
#define FMA_ROW(r) \
  x = _mm256_broadcast_ss(a##r + ka); \
  c##r##0 = _mm256_fmadd_ps(x, b0, c##r##0); \
  c##r##1 = _mm256_fmadd_ps(x, b1, c##r##1)
#define K_LOOP(ROWS) \
  for (int k = 0; k < kc; ++k, ka += csa, b += ldbk) { \
    __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), x; \
    ROWS; \
  }
  /* An edge of one or two rows (M = 128 or 512 leaves two) costs a third of
   * a whole tile: each row's sums are the same FMAs in the same order. */
  if (mr <= 2) {
    K_LOOP(FMA_ROW(0); FMA_ROW(1))
  } else {
    K_LOOP(FMA_ROW(0); FMA_ROW(1); FMA_ROW(2); FMA_ROW(3); FMA_ROW(4); FMA_ROW(5))
  }
#undef K_LOOP
#undef FMA_ROW
  __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                       {c30, c31}, {c40, c41}, {c50, c51}};
  /* Rows past mr are not written; columns past nr are masked (the loads
   * too, so nothing past C's or the bias's end is touched). Edges once went
   * through a scalar copy of the tile, which cost four times a whole tile's
   * FMAs: a 64-row decoding product (10 full groups and one of 4 rows) ran
   * at 73% of the speed of a 60-row one. */
  const int has_bias = bias != NULL;
  if (nr == NR) {
    const __m256 bias0 = has_bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 bias1 = has_bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
    for (int r = 0; r < mr; ++r) {
      float *row = C + (size_t)r * ldc;
      const float *src = accumulate ? in + r * ldi : row;
      __m256 c0 = accumulate ? _mm256_loadu_ps(src) : _mm256_setzero_ps();
      __m256 c1 = accumulate ? _mm256_loadu_ps(src + 8) : _mm256_setzero_ps();
      _mm256_storeu_ps(row, tile_out(acc[r][0], c0, bias0, accumulate, has_bias));
      _mm256_storeu_ps(row + 8, tile_out(acc[r][1], c1, bias1, accumulate, has_bias));
    }
    return;
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lane);
  const __m256 bias0 = has_bias ? _mm256_maskload_ps(bias, m0) : _mm256_setzero_ps();
  const __m256 bias1 = has_bias ? _mm256_maskload_ps(bias + 8, m1) : _mm256_setzero_ps();
  for (int r = 0; r < mr; ++r) {
    float *row = C + (size_t)r * ldc;
    const float *src = accumulate ? in + r * ldi : row;
    __m256 c0 = accumulate ? _mm256_maskload_ps(src, m0) : _mm256_setzero_ps();
    __m256 c1 = accumulate ? _mm256_maskload_ps(src + 8, m1) : _mm256_setzero_ps();
    _mm256_maskstore_ps(row, m0, tile_out(acc[r][0], c0, bias0, accumulate, has_bias));
    _mm256_maskstore_ps(row + 8, m1, tile_out(acc[r][1], c1, bias1, accumulate, has_bias));
  }
}

/* The AVX-512 micro-kernel: a tile of up to 12 rows (two MR-row panels of
 * A: rows 6..11 start a2 floats after rows 0..5) and 32 columns (two
 * adjacent panels of B: b, and b + b2 for the second), in up to 24
 * accumulators of 16 floats. Every element of C is still one chain of FMAs
 * in k order from zero, stored as tile_out stores it, so it gives the AVX2
 * kernel's bits (ModelGradientTests.avx512GivesTheAVX2Bits). */
#define AVX512 __attribute__((target("avx512f")))

AVX512 static inline __m512 tile_out512(__m512 acc, __m512 c, __m512 bias, int accumulate, int has_bias) {
  if (accumulate) return _mm512_add_ps(has_bias ? _mm512_add_ps(c, bias) : c, acc);
  return has_bias ? _mm512_add_ps(acc, bias) : acc;
}

/* The k loop for ROWS rows and VECS vectors of 16 columns; constant
 * arguments and unrolled loops, so the accumulators live in registers
 * (clang left the 12-row loop rolled, its sums on the stack: a third of
 * the speed). */
#ifdef __clang__
#define UNROLL _Pragma("clang loop unroll(full)")
#else
#define UNROLL _Pragma("GCC unroll 16")
#endif
AVX512 __attribute__((always_inline)) static inline void k_loop512(
    const int ROWS, const int VECS, int kc, const float *a, long rsa, long csa, long a2,
    const float *b, long ldbk, long b2, __m512 acc[2 * MR][2], pf_stream *pf) {
  UNROLL for (int r = 0; r < ROWS; ++r)
    UNROLL for (int v = 0; v < VECS; ++v) acc[r][v] = _mm512_setzero_ps();
  const float *lo = a, *hi = ROWS > MR ? a + a2 : a; /* no pointer past a single group */
  int countdown = pf ? pf->every : 0;
  for (int k = 0; k < kc; ++k, lo += csa, hi += csa, b += ldbk) {
    if (pf && --countdown == 0) {
      countdown = pf->every;
      if (pf->left > 0) pf_next(pf);
    }
    __m512 bv[2];
    bv[0] = _mm512_loadu_ps(b);
    if (VECS > 1) bv[1] = _mm512_loadu_ps(b + b2);
    UNROLL for (int r = 0; r < ROWS; ++r) {
      __m512 x = _mm512_set1_ps(r < MR ? lo[r * rsa] : hi[(r - MR) * rsa]);
      UNROLL for (int v = 0; v < VECS; ++v) acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
    }
  }
}

AVX512 static void kernel_avx512(int kc, const float *a, long rsa, long csa, long a2, const float *b,
                                 long ldbk, long b2, float *C, int ldc, int mr, int nr, const float *in,
                                 long ldi, const float *bias, const float *times, long ldt, pf_stream *pf) {
  const int accumulate = in != NULL;
  for (int r = 0; r < mr; ++r) {
    _mm_prefetch((const char *)(C + (size_t)r * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(C + (size_t)r * ldc + nr - 1), _MM_HINT_T0);
  }
  __m512 acc[2 * MR][2];
  /* Rows a k loop below leaves are never read (r < mr), but gcc cannot
   * tell; zeroing them costs nothing once acc lives in registers. */
  UNROLL for (int r = 0; r < 2 * MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  /* A tile of 1-5 rows (a short group: M = 128 or 512 leaves two rows,
   * decoding's 64 four) or of 7-11 (a whole group and a short one: M =
   * 128, 512 and 2048 leave eight in their last pair) runs exactly its
   * rows, packed or read in place (no row past A's end): each row's sums
   * are the same FMAs in the same order. For 7-11 rows, 16 accumulators in
   * place of 24, half of whose rows were zeros (packed) or were a 2-row
   * tile of 4 chains, too few to hide the FMA latency (in place): the
   * weight gradients with M = 128 (Zen 5, two threads, best of 20
   * rounds, two runs) 80.5-80.6 -> 81.1-81.9% of the FMA peak (qkv),
   * 81.4 -> 83.4-83.7 (the MLP's first). EXACT: mr in FIRST .. FIRST + 4. */
#define EXACT(VECS, FIRST, PF)                                                                   \
  switch (mr - (FIRST)) {                                                                        \
  case 0: k_loop512((FIRST), VECS, kc, a, rsa, csa, a2, b, ldbk, b2, acc, PF); break;            \
  case 1: k_loop512((FIRST) + 1, VECS, kc, a, rsa, csa, a2, b, ldbk, b2, acc, PF); break;        \
  case 2: k_loop512((FIRST) + 2, VECS, kc, a, rsa, csa, a2, b, ldbk, b2, acc, PF); break;        \
  case 3: k_loop512((FIRST) + 3, VECS, kc, a, rsa, csa, a2, b, ldbk, b2, acc, PF); break;        \
  default: k_loop512((FIRST) + 4, VECS, kc, a, rsa, csa, a2, b, ldbk, b2, acc, PF); break;       \
  }
  if (mr < MR) {
    if (nr > NR) EXACT(2, 1, NULL) else EXACT(1, 1, NULL)
  } else if (mr > MR && mr < 2 * MR) {
    if (nr > NR) EXACT(2, MR + 1, pf) else EXACT(1, MR + 1, pf)
#undef EXACT
  } else if (pf && pf->left > 0 && nr > NR && mr > MR) {
    k_loop512(2 * MR, 2, kc, a, rsa, csa, a2, b, ldbk, b2, acc, pf);
  } else if (nr > NR) {
    if (mr > MR) k_loop512(2 * MR, 2, kc, a, rsa, csa, a2, b, ldbk, b2, acc, NULL);
    else k_loop512(MR, 2, kc, a, rsa, csa, a2, b, ldbk, b2, acc, NULL);
  } else {
    if (mr > MR) k_loop512(2 * MR, 1, kc, a, rsa, csa, a2, b, ldbk, b2, acc, NULL);
    else k_loop512(MR, 1, kc, a, rsa, csa, a2, b, ldbk, b2, acc, NULL);
  }
  /* Rows past mr are not written; columns past nr are masked, loads too.
   * With `times` (a product's last KC block) the stored value is that
   * times the element of `times` (row stride ldt): the bits of multiplying
   * afterwards. */
  const __mmask16 m0 = nr >= NR ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
  const __mmask16 m1 = nr >= 2 * NR ? (__mmask16)0xFFFF : nr > NR ? (__mmask16)((1u << (nr - NR)) - 1) : 0;
  const int has_bias = bias != NULL;
  const __m512 bias0 = has_bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 bias1 = has_bias ? _mm512_maskz_loadu_ps(m1, bias + NR) : _mm512_setzero_ps();
  /* Unrolled, so that acc is indexed by constants only and stays in
   * registers: indexed by r, it was an array on the stack, zeroed by a
   * call to memset (1.5 KB) before each tile and its 24 sums stored there
   * after the k loop and loaded back here. */
  UNROLL for (int r = 0; r < 2 * MR; ++r) {
    if (r < mr) {
      float *row = C + (size_t)r * ldc;
      const float *src = accumulate ? in + r * ldi : row;
      __m512 c0 = accumulate ? _mm512_maskz_loadu_ps(m0, src) : _mm512_setzero_ps();
      __m512 v0 = tile_out512(acc[r][0], c0, bias0, accumulate, has_bias);
      if (times) v0 = _mm512_mul_ps(v0, _mm512_maskz_loadu_ps(m0, times + r * ldt));
      _mm512_mask_storeu_ps(row, m0, v0);
      if (m1) {
        __m512 c1 = accumulate ? _mm512_maskz_loadu_ps(m1, src + NR) : _mm512_setzero_ps();
        __m512 v1 = tile_out512(acc[r][1], c1, bias1, accumulate, has_bias);
        if (times) v1 = _mm512_mul_ps(v1, _mm512_maskz_loadu_ps(m1, times + r * ldt + NR));
        _mm512_mask_storeu_ps(row + NR, m1, v1);
      }
    }
  }
}
#undef UNROLL
#undef AVX512

static void kernel_portable(int kc, const float *a, long rsa, long csa, const float *b,
                            long ldbk, float *C, int ldc, int mr, int nr, const float *in, long ldi,
                            const float *bias) {
  const int accumulate = in != NULL;
  float acc[MR][NR] = {{0}};
  for (int k = 0; k < kc; ++k) {
    for (int r = 0; r < MR; ++r) {
      float x = a[r * rsa + k * csa];
      for (int c = 0; c < NR; ++c) acc[r][c] += x * b[c];
    }
    b += ldbk;
  }
  for (int r = 0; r < mr; ++r) {
    float *row = C + (size_t)r * ldc;
    const float *src = accumulate ? in + r * ldi : row;
    for (int c = 0; c < nr; ++c) {
      float base = accumulate ? src[c] : 0.0f;
      if (bias) base = accumulate ? base + bias[c] : bias[c];
      row[c] = accumulate || bias ? base + acc[r][c] : acc[r][c];
    }
  }
}

/* ---------------------------------------------------------------- gemm */

/* Each thread's scratch buffers, freed by the key's destructor when the
 * thread exits (the pool's workers live as long as the process). */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_made;
static _Thread_local pk_scratch *thread_scratch;

static void free_thread_scratch(void *first) {
  for (pk_scratch *s = first; s; s = s->next) {
    free(s->data);
    s->data = NULL;
    s->capacity = 0;
  }
}

static void make_scratch_key(void) { scratch_key_made = pthread_key_create(&scratch_key, free_thread_scratch) == 0; }

/* Tests only: this thread's reservations of more floats than this fail,
 * as an exhausted allocator would make them
 * (pk_test_fail_reservations_above). Per thread, so tests running beside
 * the one that sets it keep their memory. */
size_t pk_test_fail_reservations_above(size_t floats) {
  size_t previous = fail_above;
  fail_above = floats;
  return previous;
}

float *pk_reserve(pk_scratch *s, size_t floats) {
  if (floats > fail_above) return NULL;
  if (!s->listed) {
    s->listed = 1;
    s->next = thread_scratch;
    thread_scratch = s;
    pthread_once(&scratch_once, make_scratch_key);
    if (scratch_key_made) pthread_setspecific(scratch_key, s);
  }
  if (floats > s->capacity) {
    free(s->data);
    s->data = aligned_alloc(64, ((floats * sizeof(float) + 63) / 64) * 64);
    s->capacity = s->data ? floats : 0;
  }
  return s->data;
}

static _Thread_local pk_scratch a_scratch, b_scratch; /* a task's packed A and B */
static _Thread_local pk_scratch own_scratch;      /* all of op(B), packed (own_packed_b) */
static _Thread_local unsigned long own_serial;     /* the call own_scratch was packed for */
static atomic_ulong gemm_serial;                   /* numbers the own_pack calls from 1 */

typedef struct gemm_job {
  int ta, tb, M, N, K, lda, ldb, ldc;
  const float *A, *B;
  float *C;
  float beta;
  const float *bias;
  const float *residual;        /* if not NULL, C = residual + bias + op(A)·op(B) (beta unused) */
  int ldr;                      /* its row stride */
  const float *prepacked;       /* op(B) packed by pk_pack_b, or NULL */
  int own_pack;                 /* 1: each thread packs all of op(B) once (own_packed_b) */
  unsigned long serial;         /* with own_pack, this call's number (gemm_serial) */
  int pack;                     /* 1: each task packs its panels of op(B) per KC block */
  int a_in_place;               /* 1: a transposed A is read in place (AVX-512; see gemm) */
  const float *packed_b;        /* a task's current KC block of op(B) (its panels at their
                                   places); NULL = B read in place */
  size_t b_stride;              /* the distance between packed_b's panels */
  float *b_sums;                /* op(B)'s column sums are added here (packing an untransposed B) */
  int k0, kc;
  int row_groups, panels;       /* MR-row groups and NR-column panels of C */
  int row_tasks, col_tasks;     /* the grid of tasks over them */
  int isa;                      /* the caller's kernels: PK_PORTABLE, PK_AVX2, PK_AVX512 */
  pf_stream *pf;                /* the task's next block's sources, requested by its kernels */
  const float *times;           /* if not NULL, C = op(A)·op(B) ⊙ times (beta 0, no bias) */
  int ldt;                      /* its row stride */
  atomic_int *failed;           /* set by a task that could not get its scratch (its block of C
                                   then not computed): gemm counts it in gemm_failures */
  int hint_k, hint_kc;          /* if hint_kc > 0: rows hint_k .. hint_k + hint_kc - 1 of A and
                                   B (hint_k may be negative) are requested while the last
                                   block is computed, as a next block's are (ksplit) */
} gemm_job;

int pk_gemm_failures(void) { return gemm_failures; }

/* The share [*begin, *end) of `count` units for part `part` of `parts`. */
static void share(int count, int parts, int part, int *begin, int *end) {
  *begin = (int)((long)count * part / parts);
  *end = (int)((long)count * (part + 1) / parts);
}

/* The tile (row groups g..g+ng-1, panels p..p+np-1; ng and np are 2 only
 * for the AVX-512 kernel) of C for the current KC block; gb is the first
 * group of the MC block whose A panels `pa` holds packed. */
static void tile(const gemm_job *j, int g, int ng, int p, int np, int gb, const float *pa, int in_place,
                 int accumulate, const float *bias, pf_stream *pf) {
  int row = g * MR, col = p * NR;
  int mr = j->M - row < ng * MR ? j->M - row : ng * MR;
  int nr = j->N - col < np * NR ? j->N - col : np * NR;
  const float *b = j->packed_b ? j->packed_b + (size_t)p * j->b_stride : j->B + (size_t)j->k0 * j->ldb + col;
  long ldbk = j->packed_b ? NR : j->ldb;
  long b2 = j->packed_b ? (long)j->b_stride : NR; /* the next panel's row k */
  float *c = j->C + (size_t)row * j->ldc + col;
  const float *a = pa + (size_t)(g - gb) * a_stride(j->kc);
  long rsa = 1, csa = MR, a2 = (long)a_stride(j->kc); /* the next group's row 0 */
  if (in_place && j->ta) /* row k of Aᵀ's group: MR floats of A's row k */
    a = j->A + (size_t)j->k0 * j->lda + row, rsa = 1, csa = j->lda, a2 = MR;
  else if (in_place && (mr == ng * MR || j->isa == PK_AVX512))
    a = j->A + (size_t)row * j->lda + j->k0, rsa = j->lda, csa = 1, a2 = (long)MR * j->lda;
  if (bias) bias += col;
  /* What the tile adds to: C, or on the first KC block the residual. */
  int residual = j->residual && j->k0 == 0;
  const float *in = !accumulate ? NULL : residual ? j->residual + (size_t)row * j->ldr + col : c;
  long ldi = residual ? j->ldr : j->ldc;
  /* C ⊙ times once C is complete: on the last KC block. */
  const float *times = j->times && j->k0 + j->kc == j->K ? j->times + (size_t)row * j->ldt + col : NULL;
  if (j->isa == PK_AVX512) {
    kernel_avx512(j->kc, a, rsa, csa, a2, b, ldbk, b2, c, j->ldc, mr, nr, in, ldi, bias, times, j->ldt, pf);
    return;
  }
  if (j->isa == PK_AVX2) kernel_avx2(j->kc, a, rsa, csa, b, ldbk, c, j->ldc, mr, nr, in, ldi, bias);
  else kernel_portable(j->kc, a, rsa, csa, b, ldbk, c, j->ldc, mr, nr, in, ldi, bias);
  if (times)
    for (int r = 0; r < mr; ++r)
      for (int i = 0; i < nr; ++i) c[(size_t)r * j->ldc + i] *= times[(size_t)r * j->ldt + i];
}

static void compute_block(const gemm_job *j, int g0, int g1, int p0, int p1);

/* The KC block at k0 of op(B) as this thread packed all of it for the
 * call j (each block's panels b_stride(kc) apart), packed on the thread's
 * first task of the call; NULL if its buffer could not be had. */
static const float *own_packed_b(const gemm_job *j, int k0) {
  size_t block = (size_t)j->panels * b_stride(KC);
  float *all = pk_reserve(&own_scratch, (size_t)((j->K + KC - 1) / KC) * block);
  if (!all) return NULL;
  if (own_serial != j->serial) {
    for (int k = 0; k < j->K; k += KC) {
      int kc = j->K - k < KC ? j->K - k : KC;
      pack_b(j->tb, j->B, j->ldb, k, kc, j->N, 0, j->panels, b_stride(kc), all + (size_t)(k / KC) * block, NULL,
             j->isa);
    }
    own_serial = j->serial;
  }
  return all + (size_t)(k0 / KC) * block;
}

/* The task's row groups and panels. The AVX-512 kernel takes row groups
 * and panels in pairs; a task's share of panels then starts on an even
 * one. */
static void task_share(const gemm_job *j, int task, int *g0, int *g1, int *p0, int *p1) {
  share(j->row_groups, j->row_tasks, task / j->col_tasks, g0, g1);
  if (j->isa == PK_AVX512) {
    share((j->panels + 1) / 2, j->col_tasks, task % j->col_tasks, p0, p1);
    *p0 *= 2;
    *p1 = 2 * *p1 < j->panels ? 2 * *p1 : j->panels;
  } else {
    share(j->panels, j->col_tasks, task % j->col_tasks, p0, p1);
  }
}

/* A task owns a block of C (rows x panels) and runs every KC block of it
 * in turn, packing the panels of B it computes (all of them in a row
 * split) into its own buffer, and its own A: a GEMM is one call on the
 * pool, and no block waits for the other tasks. A shared pack phase
 * before each block's compute phase (B packed once for all tasks, split
 * between them) cost two fork-joins per block: against it, best of 30
 * interleaved rounds at 2 threads (AVX-512), the weight gradients
 * (K = 2048) +2..+6 points of the FMA peak, the LM head +7..+9, the other
 * shapes within the noise (+-3). Each element of C is computed as before,
 * by one task in the same order. */
static void gemm_task(void *ctx, int task) {
  const gemm_job *j = ctx;
  int g0, g1, p0, p1;
  task_share(j, task, &g0, &g1, &p0, &p1);
  gemm_job block = *j;
  float *panels = NULL;
  if (j->pack) {
    panels = pk_reserve(&b_scratch, (size_t)j->panels * b_stride(KC));
    if (!panels) {
      atomic_store_explicit(j->failed, 1, memory_order_relaxed);
      return;
    }
  }
  for (int k0 = 0; k0 < j->K; k0 += KC) {
    block.k0 = k0;
    block.kc = j->K - k0 < KC ? j->K - k0 : KC;
    if (j->prepacked) {
      block.packed_b = j->prepacked + (size_t)j->panels * NR * k0;
      block.b_stride = (size_t)block.kc * NR;
    } else if (j->own_pack) {
      if (!(block.packed_b = own_packed_b(j, k0))) {
        atomic_store_explicit(j->failed, 1, memory_order_relaxed);
        return;
      }
      block.b_stride = b_stride(block.kc);
    } else if (panels) {
      block.b_stride = b_stride(block.kc);
      /* In a row split every task packs all of B; the first sums it. */
      float *sums = task / j->col_tasks == 0 ? j->b_sums : NULL;
      pack_b(j->tb, j->B, j->ldb, k0, block.kc, j->N, p0, p1, block.b_stride, panels, sums, j->isa);
      block.packed_b = panels;
    } else if (j->b_sums && task / j->col_tasks == 0) {
      /* B read in place (gemm): its columns' sums, row by row as pack_b
       * adds them. */
      int c1 = p1 * NR < j->N ? p1 * NR : j->N;
      for (int k = k0; k < k0 + block.kc; ++k) {
        const float *row = j->B + (size_t)k * j->ldb;
        for (int c = p0 * NR; c < c1; ++c) j->b_sums[c] += row[c];
      }
    }
    /* The next block's rows of a transposed A and an untransposed B, the
     * operands packed from sources beyond L2 (the weight gradients'),
     * requested while this block is computed (pf_stream). */
    pf_stream next = {0};
    block.pf = NULL;
    int next_k = k0 + KC, next_kc = j->K - k0 - KC < KC ? j->K - k0 - KC : KC;
    if (next_kc <= 0) next_k = j->hint_k, next_kc = j->hint_kc;
    if (j->isa == PK_AVX512 && next_kc > 0 && j->ta && !j->tb && !j->prepacked && !j->own_pack) {
      int r0 = g0 * MR, r1 = g1 * MR < j->M ? g1 * MR : j->M, c0 = p0 * NR, c1 = p1 * NR < j->N ? p1 * NR : j->N;
      pf_add(&next, j->A + (long)next_k * j->lda + r0, j->lda, next_kc, r1 - r0);
      pf_add(&next, j->B + (long)next_k * j->ldb + c0, j->ldb, next_kc, c1 - c0);
      long steps = (long)block.kc * ((g1 - g0 + 1) / 2) * ((p1 - p0 + 1) / 2);
      next.every = next.left > 0 && steps / next.left > 1 ? (int)(steps / next.left) : 1;
      block.pf = &next;
    }
    compute_block(&block, g0, g1, p0, p1);
  }
}

/* A task's tiles of C (row groups g0..g1-1, panels p0..p1-1) for the
 * current KC block: beta applied there on the first block, then the tiles,
 * MC rows at a time so those rows of A stay in L2 while every panel of B
 * passes. */
static void compute_block(const gemm_job *j, int g0, int g1, int p0, int p1) {
  const int step = j->isa == PK_AVX512 ? 2 : 1;
  int first = j->k0 == 0;
  int accumulate = !first || j->beta != 0.0f || j->residual;
  if (first && !j->residual && j->beta != 0.0f && j->beta != 1.0f) {
    for (int i = g0 * MR; i < g1 * MR && i < j->M; ++i) {
      float *row = j->C + (size_t)i * j->ldc;
      for (int c = p0 * NR; c < p1 * NR && c < j->N; ++c) row[c] *= j->beta;
    }
  }
  const float *bias = first ? j->bias : NULL;
  const int groups_per_block = MC / MR;
  /* This task's packed A panels, an MC block at a time. */
  float *pa = pk_reserve(&a_scratch, (size_t)groups_per_block * a_stride(KC));
  if (!pa) {
    atomic_store_explicit(j->failed, 1, memory_order_relaxed);
    return;
  }
  /* An untransposed A is read in place: its rows are already contiguous
   * along k, and packing them cost as much as the product when B has few
   * panels (the LM head, 32 columns: 27% of the FMA peak packed, 88% in
   * place, one thread) and was repeated by every task of a column split.
   * Only a short edge group (< MR rows) is packed, zero-padded. A
   * transposed A is read in place when gemm chose to (a_in_place). */
  int in_place = !j->ta || j->a_in_place;
  for (int gb = g0; gb < g1; gb += groups_per_block) {
    int ge = gb + groups_per_block < g1 ? gb + groups_per_block : g1;
    if (!in_place) {
      pack_a_groups(j->ta, j->A, j->lda, j->M, gb, ge, j->k0, j->kc, pa);
    } else if (ge * MR > j->M && j->isa != PK_AVX512) {
      /* Only a short edge group is packed (the AVX-512 kernel reads it in
       * place, exactly its rows). */
      int g = ge - 1;
      pack_a_panel(j->ta, j->A, j->lda, g * MR, j->M - g * MR, j->k0, j->kc, pa + (size_t)(g - gb) * a_stride(j->kc));
    }
    /* The next block's rows of an in-place A, fetched into L2 while this
     * block is computed: activations arrive cold from the operation before
     * (2048-row products cycling through 16 operand sets: mean GFLOP/s
     * 8-15% higher in seven of eight interleaved runs at one and two
     * threads, 2% lower in the eighth). The AVX-512 kernel requests them
     * from inside its k loop (pf_stream); the others a slice per panel. */
    int next_rows = 0;
    const float *next_a = NULL;
    if (in_place && !j->ta && ge < g1) {
      int ng = g1 - ge < groups_per_block ? g1 - ge : groups_per_block;
      next_rows = ng * MR;
      if (ge * MR + next_rows > j->M) next_rows = j->M - ge * MR;
      next_a = j->A + (size_t)ge * MR * j->lda + j->k0;
    }
    pf_stream rows_ahead = {0}, *pf = j->pf;
    if (next_a && j->isa == PK_AVX512) {
      pf_add(&rows_ahead, next_a, j->lda, next_rows, j->kc);
      /* and the rows of `times` the next block's tiles scale by */
      if (j->times && j->k0 + j->kc == j->K) {
        int c0 = p0 * NR, c1 = p1 * NR < j->N ? p1 * NR : j->N;
        pf_add(&rows_ahead, j->times + (size_t)ge * MR * j->ldt + c0, j->ldt, next_rows, c1 - c0);
      }
      long steps = (long)j->kc * ((ge - gb + 1) / 2) * ((p1 - p0 + 1) / 2);
      rows_ahead.every = steps / rows_ahead.left > 1 ? (int)(steps / rows_ahead.left) : 1;
      pf = &rows_ahead;
      next_a = NULL;
    }
    /* When the task's panels of B fit in half of L1 together (the LM head:
     * two panels), each MR-row tile of A is kept in L1 and crosses all of
     * them instead: the panel-outer order streamed a 48 KB block of A from
     * L2 once per panel (one thread: 76% of the FMA peak, 87% in this order,
     * best of 20 interleaved rounds). */
    /* So too when a transposed A's group is packed and B is read in place
     * (the weight gradients with fewer rows than columns, gemm): A's
     * group stays in L1 and B's rows stream from L2 as they lie. */
    if ((size_t)(p1 - p0) * j->kc * NR * sizeof(float) <= 16384 || (j->ta && !j->packed_b)) {
      for (int g = gb; g < ge; g += step) {
        for (int p = p0; p < p1; p += step)
          tile(j, g, ge - g < step ? 1 : step, p, p1 - p < step ? 1 : step, gb, pa, in_place, accumulate, bias, pf);
      }
      continue;
    }
    const int row_lines = (j->kc * (int)sizeof(float) + 63) / 64;
    for (int p = p0; p < p1; p += step) {
      int np = p1 - p < step ? 1 : step;
      if (next_a) {
        long lines = (long)next_rows * row_lines, all = p1 - p0;
        for (long l = lines * (p - p0) / all; l < lines * (p - p0 + np) / all; ++l)
          _mm_prefetch((const char *)(next_a + (size_t)(l / row_lines) * j->lda + (l % row_lines) * 16), _MM_HINT_T1);
      }
      for (int g = gb; g < ge; g += step) tile(j, g, ge - g < step ? 1 : step, p, np, gb, pa, in_place, accumulate, bias, pf);
    }
  }
}

/* A weight-gradient-shaped product (C = Aᵀ·B + beta·C, K several KC
 * blocks, C small) split along K between the threads: each task packs
 * only its blocks' share of both operands, where a split of C's rows or
 * columns had every task pack all of the operand the split shares (Aᵀ,
 * 1 MB of each 4 MB the two tasks of a 128 x 2048 x 384 gradient packed).
 * The calling thread takes blocks from the front, block 0 first, and
 * adds each to C as the unsplit product does; the other threads take
 * blocks from the back, each stored alone (the tile's register sums,
 * which the unsplit product would have added to C) in a partial of its
 * own; where the two ends meet, the partials are added to C in block
 * order, rows split between the threads. Every element gets the same
 * additions in the same order: the same bits at any thread count. Blocks
 * are taken one at a time, not half each, so that a thread the VM slows
 * leaves no half to wait for (Decisions #67). */
typedef struct ksplit_job {
  gemm_job one;                /* the whole product as one task (row_tasks = col_tasks = 1) */
  int parts, blocks;
  atomic_uint_fast64_t range;  /* (front << 32) | back: the blocks not taken yet */
  float *partials;             /* block b's product alone at partials + (b - 1) * M * N */
} ksplit_job;

/* The next block from the front (the caller's) or the back; -1 when none
 * is left. */
static int ksplit_take(ksplit_job *s, int from_back) {
  uint_fast64_t current = atomic_load(&s->range);
  for (;;) {
    uint32_t front = (uint32_t)(current >> 32), back = (uint32_t)current;
    if (front >= back) return -1;
    uint_fast64_t next = from_back ? current - 1 : current + ((uint_fast64_t)1 << 32);
    if (atomic_compare_exchange_weak(&s->range, &current, next)) return (int)(from_back ? back - 1 : front);
  }
}

/* Part 0 (the caller) adds its blocks into C; the others store theirs in
 * their partials. Each block is a one-block product that requests the
 * rows of the block its thread will likely take next while it runs. */
static void ksplit_task(void *ctx, int part) {
  ksplit_job *s = ctx;
  const gemm_job *one = &s->one;
  for (int b = part == 0 ? 0 : ksplit_take(s, 1); b >= 0; b = ksplit_take(s, part > 0)) {
    gemm_job j = *one;
    int k0 = b * KC, hint = part > 0 ? b - 1 : b + 1;
    j.A += (size_t)k0 * j.lda;
    j.B += (size_t)k0 * j.ldb;
    j.K = one->K - k0 < KC ? one->K - k0 : KC;
    if (hint >= 0 && hint < s->blocks) {
      j.hint_k = (hint - b) * KC;
      j.hint_kc = one->K - hint * KC < KC ? one->K - hint * KC : KC;
    }
    if (part > 0) j.C = s->partials + (size_t)(b - 1) * j.M * j.N, j.ldc = j.N, j.beta = 0.0f;
    else if (b > 0) j.beta = 1.0f;
    gemm_task(&j, 0);
  }
}

/* C += the partials of blocks front .. blocks - 1, in that order, rows
 * split between the tasks. */
static void ksplit_sum_task(void *ctx, int task) {
  const ksplit_job *s = ctx;
  const gemm_job *j = &s->one;
  int r0, r1, front = (int)(atomic_load(&s->range) >> 32);
  share(j->M, s->parts, task, &r0, &r1);
  for (int r = r0; r < r1; ++r) {
    float *row = j->C + (size_t)r * j->ldc;
    for (int b = front; b < s->blocks; ++b) {
      const float *p = s->partials + ((size_t)(b - 1) * j->M + r) * j->N;
      for (int c = 0; c < j->N; ++c) row[c] += p[c];
    }
  }
}

static _Thread_local pk_scratch ksplit_tls; /* the partials (ksplit) */

/* Runs job (set up for one task) split along K over `threads`; 0 when it
 * has fewer than two blocks or the partials could not be had (then nothing
 * has run). */
static int ksplit(const gemm_job *job, int threads) {
  int blocks = (job->K + KC - 1) / KC;
  size_t floats = (size_t)(blocks - 1) * job->M * job->N;
  if (blocks < 2 || floats > KSPLIT_MAX_FLOATS) return 0;
  ksplit_job s = {.one = *job, .parts = threads < blocks ? threads : blocks, .blocks = blocks};
  atomic_init(&s.range, (uint_fast64_t)1 << 32 | (uint_fast64_t)blocks); /* block 0 is part 0's */
  if (!(s.partials = pk_reserve(&ksplit_tls, floats))) return 0;
  pk_parallel_for(s.parts, ksplit_task, &s);
  if ((int)(atomic_load(&s.range) >> 32) < blocks) pk_parallel_for(s.parts, ksplit_sum_task, &s);
  return 1;
}

/* pk_gemm_bias, with op(B) already packed by pk_pack_b when `prepacked` is
 * not NULL (then B, ldb and tb are unused), B's column sums added to
 * b_sums when not NULL, and `residual` (row stride ldr) in place of
 * beta·C when not NULL. */
static void gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc, const float *bias, const float *prepacked, float *b_sums,
                 const float *residual, int ldr, const float *times, int ldt) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int i = 0; i < M; ++i) {
      float *row = C + (size_t)i * ldc;
      const float *in = residual ? residual + (size_t)i * ldr : row;
      float scale = residual ? 1.0f : beta;
      for (int c = 0; c < N; ++c) row[c] = (scale == 0.0f ? 0.0f : scale * in[c]) + (bias ? bias[c] : 0.0f);
      if (times)
        for (int c = 0; c < N; ++c) row[c] *= times[(size_t)i * ldt + c];
    }
    return;
  }
  atomic_int failed = 0;
  gemm_job job = {.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldc,
                  .A = A, .B = B, .C = C, .beta = beta, .bias = bias, .residual = residual, .ldr = ldr,
                  .times = times, .ldt = ldt,
                  .isa = pk_kernel_level(),
                  .failed = &failed};
  job.row_groups = (M + MR - 1) / MR;
  job.panels = (N + NR - 1) / NR;
  /* B is read in place only when its rows hold NR-column panels whole and
   * A is one MC block at most (decoding, unless its weights come packed:
   * packing would cost as much as the product); otherwise packed, as its
   * strided rows map a panel onto few L1 sets (rows 2 KB apart: two sets).
   * The MLP's first weight gradient (128 x 2048 x 512) read its B in
   * place at 73% of the one-thread peak, packed at 81%. */
  job.prepacked = prepacked;
  /* (Also packed when B's column sums are wanted: they are taken while
   * packing; but see below.) */
  job.pack = !prepacked && (tb || N % NR != 0 || M > MC || b_sums);
  job.b_sums = b_sums;
  /* A weight gradient Aᵀ·B (both operands activations, K long) with the
   * AVX-512 kernel packs only the smaller of its two operands' KC blocks
   * and reads the larger where it lies, streamed from L2 past the packed
   * one, which stays in L1: Aᵀ (M rows) when M <= N, its groups crossing
   * every panel of B in place; else B, its panels crossing every group of
   * A in place (row k of Aᵀ's group is MR adjacent floats of A's row k).
   * Packing both cost 12% of a one-thread product, bound by the bytes it
   * moves through L2 (Documentation/Performance.md). One thread, Zen 5,
   * operands from beyond L2, median of 10 alternated rounds: 128 x 2048 x
   * 384 73.5 -> 76.3% of the FMA peak, 128 x 2048 x 512 74.5 -> 77.7,
   * 512 x 2048 x 128 74.9 -> 78.5; the training pass's, on one thread
   * each with B's column sums (taken then from B's rows before each
   * block's tiles, as pack_b adds them), +5-9%, the LM head's (128 x 2048
   * x 32) +34%. Each element gets the same FMAs in the same order: the
   * same bits (Decisions #70). */
  if (job.isa == PK_AVX512 && ta && !tb && !prepacked && N % NR == 0) {
    if (M <= N) job.pack = 0;
    else job.pack = 1, job.a_in_place = 1;
  }
  /* One task per thread, split the way that balances best: rows for tall
   * matrices, columns for short ones (decoding), where A is then shared.
   * On a tie the split shares the smaller operand, as every task reads all
   * of the other one: a row split has each read all of op(B)'s block
   * (kc x N), a column split all of op(A)'s (M x kc). The weight gradients
   * of qkv and the MLP's first layer (M 128, N 384 and 512) tie; split by
   * columns they reached 76-81% of the FMA peak at 2 threads, by rows
   * 68-77% (best of 60 interleaved rounds, two runs). */
  int threads = pk_threads();
  job.row_tasks = job.col_tasks = 1;
  if ((double)M * N * K >= 100000.0 && threads > 1) {
    int by_rows = job.row_groups >= threads ? threads : job.row_groups;
    int by_cols = job.panels >= threads ? threads : job.panels;
    /* Largest share in units of tiles, for each split. */
    long rows_cost = (long)((job.row_groups + by_rows - 1) / by_rows) * job.panels;
    long cols_cost = (long)((job.panels + by_cols - 1) / by_cols) * job.row_groups;
    if (rows_cost < cols_cost || (rows_cost == cols_cost && N <= M)) job.row_tasks = by_rows;
    else job.col_tasks = by_cols;
  }
  /* The weight gradients' shape, Aᵀ·B over several KC blocks, split along
   * K instead (ksplit); not with B's column sums (taken in order over all
   * of K as B is packed), nor a bias, residual or `times`. */
  if (threads > 1 && ta && !tb && !prepacked && !bias && !b_sums && !residual && !times &&
      job.row_tasks * job.col_tasks > 1) {
    gemm_job one = job;
    one.row_tasks = one.col_tasks = 1;
    if (ksplit(&one, threads)) {
      if (atomic_load_explicit(&failed, memory_order_relaxed)) ++gemm_failures;
      return;
    }
  }
  /* With B packed before the call, a task packs nothing: the rows go in
   * ROW_TASKS_PER_THREAD tasks per thread, taken as pk_parallel_ranges
   * takes them (each thread the rows it wrote in the pass before, then
   * what is left of the other's), so a thread the VM stalls leaves no
   * half of the product to wait for. */
  /* So too a row split whose tasks would each pack all of op(B): each
   * thread packs it once per call, on its first task (own_packed_b). Split
   * in halves, such products ran at the pace of the slower vCPU, and one
   * of this VM's two is often at about half speed for seconds while the
   * other is not (Documentation/Performance.md: the LM head 2048 x 32 x
   * 128: its threads waited 14-16% of their time, so 4-7%). */
  if (!prepacked && job.pack && !b_sums && job.row_tasks > 1 &&
      (size_t)((K + KC - 1) / KC) * job.panels * b_stride(KC) <= OWN_PACK_MAX_FLOATS) {
    job.own_pack = 1;
    job.pack = 0;
    job.serial = atomic_fetch_add_explicit(&gemm_serial, 1, memory_order_relaxed) + 1;
  }
  if ((prepacked || job.own_pack) && job.row_tasks > 1) {
    int tasks = threads * ROW_TASKS_PER_THREAD;
    if (tasks > job.row_groups / 4) tasks = job.row_groups / 4; /* 4 row groups a task at least */
    if (tasks > job.row_tasks) job.row_tasks = tasks;
    pk_parallel_ranges(job.row_tasks, gemm_task, &job);
  } else {
    pk_parallel_for(job.row_tasks * job.col_tasks, gemm_task, &job);
  }
  if (atomic_load_explicit(&failed, memory_order_relaxed)) ++gemm_failures;
}

void pk_gemm_bias(int ta, int tb, int M, int N, int K, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc,
                  const float *bias) {
  gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc, bias, NULL, NULL, NULL, 0, NULL, 0);
}

/* The residual connections' products: adding into a copy of the residual
 * made a pass over 2 MB for each (forward, reference shape). */
void pk_gemm_residual(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                      const float *residual, int ldr, float *C, int ldc, const float *bias) {
  gemm(ta, tb, M, N, K, A, lda, B, ldb, 1.0f, C, ldc, bias, NULL, NULL, residual, ldr, NULL, 0);
}

void pk_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc) {
  gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc, NULL, NULL, NULL, NULL, 0, NULL, 0);
}

/* The weight gradients' sums of B's columns (the bias gradients) are taken
 * while B is packed: a separate pass read B again from L3 (0.4 ms of a
 * 25 ms training pass at the reference shape). */
void pk_gemm_sums(int ta, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc, float *b_sums) {
  if (M <= 0 || N <= 0 || K <= 0) {
    gemm(ta, 0, M, N, K, A, lda, B, ldb, beta, C, ldc, NULL, NULL, NULL, NULL, 0, NULL, 0);
    for (int k = 0; k < K && N > 0; ++k)
      for (int j = 0; j < N; ++j) b_sums[j] += B[(size_t)k * ldb + j];
    return;
  }
  gemm(ta, 0, M, N, K, A, lda, B, ldb, beta, C, ldc, NULL, NULL, b_sums, NULL, 0, NULL, 0);
}

size_t pk_packed_b_floats(int K, int N) {
  return K <= 0 || N <= 0 ? 0 : (size_t)((N + NR - 1) / NR) * NR * (size_t)K;
}

/* Block k0 of the KC blocks at panels * NR * k0: each block as the pack
 * phase lays it out, so a GEMM reads the same panels either way. */
void pk_pack_b(int trans_b, int K, int N, const float *B, int ldb, float *out) {
  int panels = (N + NR - 1) / NR, isa = pk_kernel_level();
  for (int k0 = 0; k0 < K; k0 += KC) {
    int kc = K - k0 < KC ? K - k0 : KC;
    pack_b(trans_b, B, ldb, k0, kc, N, 0, panels, (size_t)kc * NR, out + (size_t)panels * NR * k0, NULL, isa);
  }
}

void pk_gemm_packed(int trans_a, int M, int N, int K, const float *A, int lda, const float *packed_b,
                    float beta, float *C, int ldc, const float *bias) {
  gemm(trans_a, 0, M, N, K, A, lda, NULL, 0, beta, C, ldc, bias, packed_b, NULL, NULL, 0, NULL, 0);
}

void pk_gemm_times(int trans_b, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                   const float *packed_b, float *C, int ldc, const float *times, int ldt) {
  gemm(0, trans_b, M, N, K, A, lda, B, ldb, 0.0f, C, ldc, NULL, packed_b, NULL, NULL, 0, times, ldt);
}

void pk_gemm_packed_residual(int trans_a, int M, int N, int K, const float *A, int lda, const float *packed_b,
                             const float *residual, int ldr, float *C, int ldc, const float *bias) {
  gemm(trans_a, 0, M, N, K, A, lda, NULL, 0, 1.0f, C, ldc, bias, packed_b, NULL, residual, ldr, NULL, 0);
}

/* ------------------------------------------------------------ FMA peak */

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 10 independent chains of LANES-float vectors hide the FMA latency;
 * returns flops. Each chain starts from its own value and passes an empty
 * asm barrier every iteration: chains starting equal were merged into one
 * by GCC (so an earlier version counted 10 FMAs where the CPU ran 1,
 * latency-bound, and reported 1.25x the real peak). V is the vector type,
 * P its intrinsics' prefix. */
#define FMA_LOOP(NAME, TARGET, V, P, LANES)                                                           \
  __attribute__((target(TARGET))) static double NAME(long iterations, float *sink) {                  \
    V a0 = P##_set1_ps(1.0f), a1 = P##_set1_ps(1.1f), a2 = P##_set1_ps(1.2f), a3 = P##_set1_ps(1.3f); \
    V a4 = P##_set1_ps(1.4f), a5 = P##_set1_ps(1.5f), a6 = P##_set1_ps(1.6f), a7 = P##_set1_ps(1.7f); \
    V a8 = P##_set1_ps(1.8f), a9 = P##_set1_ps(1.9f);                                                 \
    const V x = P##_set1_ps(0.999999f), y = P##_set1_ps(1e-7f);                                      \
    for (long i = 0; i < iterations; ++i) {                                                          \
      __asm__("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7),  \
                   "+v"(a8), "+v"(a9));                                                              \
      a0 = P##_fmadd_ps(a0, x, y), a1 = P##_fmadd_ps(a1, x, y), a2 = P##_fmadd_ps(a2, x, y);         \
      a3 = P##_fmadd_ps(a3, x, y), a4 = P##_fmadd_ps(a4, x, y), a5 = P##_fmadd_ps(a5, x, y);         \
      a6 = P##_fmadd_ps(a6, x, y), a7 = P##_fmadd_ps(a7, x, y), a8 = P##_fmadd_ps(a8, x, y);         \
      a9 = P##_fmadd_ps(a9, x, y);                                                                   \
    }                                                                                                \
    V sum = P##_add_ps(P##_add_ps(P##_add_ps(a0, a1), P##_add_ps(a2, a3)),                           \
                       P##_add_ps(P##_add_ps(a4, a5), P##_add_ps(P##_add_ps(a6, a7), P##_add_ps(a8, a9)))); \
    float out[LANES];                                                                                \
    P##_storeu_ps(out, sum);                                                                         \
    *sink += out[0];                                                                                 \
    return (double)iterations * 10 * LANES * 2;                                                      \
  }
FMA_LOOP(fma_loop_avx2, "avx2,fma", __m256, _mm256, 8)
FMA_LOOP(fma_loop_avx512, "avx512f", __m512, _mm512, 16)
#undef FMA_LOOP

static double fma_loop_portable(long iterations, float *sink) {
  float a[40];
  for (int i = 0; i < 40; ++i) a[i] = 1.0f + 0.01f * (float)i;
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
  ask_cpu();
  j->flops[task] = atomic_load_explicit(&cpu_avx512, memory_order_relaxed) ? fma_loop_avx512(j->iterations, &j->sink[task])
                   : atomic_load_explicit(&cpu_avx2, memory_order_relaxed) ? fma_loop_avx2(j->iterations, &j->sink[task])
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
