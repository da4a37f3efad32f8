/* The pool's background items (pk_post, pk_wait) against the jobs the
 * posting thread runs meanwhile. Each round posts up to 10 items (more
 * than the pool's 8 slots: the rest run at once, on the poster), runs a
 * pool job of 8 tasks while they run, and waits for the items in an order
 * that changes from round to round. Every item and task must run exactly
 * once; an item a worker runs must see one thread (pk_threads() 1) and
 * every item its poster's kernel choice (portable forced in odd rounds); an item whose
 * product cannot get its scratch (the poster's test hook, every fifth
 * round) must count in the poster's pk_gemm_failures once waited for;
 * every third round pauses 20 ms first, so the worker sleeps, and then
 * runs no job and pauses 2 ms after posting: only the posts can have woken
 * a worker that runs an item in such a round, and one must. The run
 * ends within two minutes (a lost wake-up hangs: SIGALRM ends it). Each
 * round then runs SOLO items as the tasks of one pk_parallel_solo job:
 * each must run once, see one thread and its caller's kernel choice, and
 * its product without scratch (in failing rounds) count in the caller's
 * pk_gemm_failures; some must have run on the worker. Exit 0 and "N
 * rounds agreed", or 1 naming what went wrong.
 *
 *   pool_background [rounds]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "prism_kernels.h"

enum { ITEMS = 10, TASKS = 8, DIM = 24, SOLO = 4 };

typedef struct item {
  atomic_int runs;
  int on_worker, threads;  /* seen by the item */
  const char *kernels;     /* pk_kernels_name() inside */
  int product;             /* runs a product the test hook may fail */
  float a[DIM * DIM], b[DIM * DIM], c[DIM * DIM];
} item;

static item items[ITEMS];
static atomic_int task_runs[TASKS];
static pthread_t poster;

static void pause_us(long us) {
  struct timespec t = {us / 1000000, (us % 1000000) * 1000L};
  nanosleep(&t, NULL);
}

static void run_item(void *ctx, int task) {
  item *it = ctx;
  (void)task;
  it->on_worker = !pthread_equal(pthread_self(), poster);
  it->threads = pk_threads();
  it->kernels = pk_kernels_name();
  if (it->product) pk_gemm(0, 0, DIM, DIM, DIM, it->a, DIM, it->b, DIM, 0.0f, it->c, DIM);
  pause_us(300);
  atomic_fetch_add(&it->runs, 1);
}

static void run_solo(void *ctx, int task) { run_item((item *)ctx + task, 0); }

static void run_task(void *ctx, int t) {
  (void)ctx;
  pause_us(100);
  atomic_fetch_add(&task_runs[t], 1);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 200;
  pk_set_threads(2);
  poster = pthread_self();
  alarm(120);
  pk_parallel_for(TASKS, run_task, NULL); /* starts the worker */
  int woken = 0, paused = 0, solo_on_worker = 0;
  for (int r = 0; r < rounds; ++r) {
    int forced = r & 1, failing = r % 5 == 0, asleep = r % 3 == 0;
    if (asleep) pause_us(20000), ++paused; /* the worker falls asleep */
    pk_force_portable(forced);
    const char *expected = pk_kernels_name();
    int count = 1 + r % ITEMS, handle[ITEMS];
    for (int i = 0; i < count; ++i) {
      item *it = &items[i];
      atomic_store(&it->runs, 0);
      it->on_worker = 0, it->threads = 0, it->kernels = NULL;
      it->product = failing && i == 0;
    }
    for (int t = 0; t < TASKS; ++t) atomic_store(&task_runs[t], 0);
    int failures = pk_gemm_failures();
    size_t hook = failing ? pk_test_fail_reservations_above(0) : 0;
    for (int i = 0; i < count; ++i) handle[i] = pk_post(run_item, &items[i]);
    if (failing) pk_test_fail_reservations_above(hook);
    if (asleep) pause_us(2000);
    else pk_parallel_for(TASKS, run_task, NULL);
    /* Waited for last to first in even rounds, in odd ones from item r % count on. */
    for (int n = 0; n < count; ++n) pk_wait(handle[r % 2 ? (n + r) % count : count - 1 - n]);
    for (int i = 0; i < count; ++i) {
      item *it = &items[i];
      if (atomic_load(&it->runs) != 1) {
        fprintf(stderr, "round %d: item %d ran %d times\n", r, i, atomic_load(&it->runs));
        return 1;
      }
      if (it->on_worker && it->threads != 1) {
        fprintf(stderr, "round %d: item %d saw %d threads on a worker\n", r, i, it->threads);
        return 1;
      }
      if (!it->kernels || strcmp(it->kernels, expected) != 0) {
        fprintf(stderr, "round %d: item %d ran with %s kernels, its poster's were %s\n", r, i,
                it->kernels ? it->kernels : "no", expected);
        return 1;
      }
      if (it->on_worker && asleep) ++woken;
    }
    for (int t = 0; t < TASKS; ++t) {
      if (atomic_load(&task_runs[t]) != !asleep) {
        fprintf(stderr, "round %d: task %d ran %d times\n", r, t, atomic_load(&task_runs[t]));
        return 1;
      }
    }
    if (failing && pk_gemm_failures() != failures + 1) {
      fprintf(stderr, "round %d: a product without scratch counted %d times\n", r, pk_gemm_failures() - failures);
      return 1;
    }
    /* The same items as the tasks of a pk_parallel_solo job, each with a product. */
    for (int i = 0; i < SOLO; ++i) {
      item *it = &items[i];
      atomic_store(&it->runs, 0);
      it->on_worker = 0, it->threads = 0, it->kernels = NULL, it->product = 1;
    }
    failures = pk_gemm_failures();
    hook = failing ? pk_test_fail_reservations_above(0) : 0;
    pk_parallel_solo(SOLO, run_solo, items);
    if (failing) pk_test_fail_reservations_above(hook);
    for (int i = 0; i < SOLO; ++i) {
      item *it = &items[i];
      if (atomic_load(&it->runs) != 1 || it->threads != 1 || !it->kernels || strcmp(it->kernels, expected) != 0) {
        fprintf(stderr, "round %d: solo task %d ran %d times, saw %d threads and %s kernels (its caller's: %s)\n", r,
                i, atomic_load(&it->runs), it->threads, it->kernels ? it->kernels : "no", expected);
        return 1;
      }
      solo_on_worker += it->on_worker;
    }
    if (pk_gemm_failures() != failures + (failing ? SOLO : 0)) {
      fprintf(stderr, "round %d: %d solo products without scratch counted %d times\n", r, failing ? SOLO : 0,
              pk_gemm_failures() - failures);
      return 1;
    }
  }
  if (solo_on_worker == 0) {
    fprintf(stderr, "no solo task ran on the worker\n");
    return 1;
  }
  if (woken == 0) {
    fprintf(stderr, "no worker ran an item after any pause: the sleeping worker was not woken\n");
    return 1;
  }
  printf("%d rounds agreed; a worker ran %d items in the %d rounds after a pause and %d solo tasks\n", rounds, woken,
         paused, solo_on_worker);
  return 0;
}
