/* The kernels' thread pool across its sleeping paths: between jobs the
 * workers spin a while and then sleep until the next job wakes them, and a
 * caller whose workers take long sleeps until the last task is done. Each
 * round runs a job whose tasks take 5 ms on a worker and 0.5 ms on the
 * caller (so the caller, done with its own, waits for the worker's past
 * its spinning), and every third round pauses 20 ms (so the workers fall
 * asleep). Every task of every job must run exactly once, a worker must
 * take part in some job after a pause (it was woken), and the whole run
 * ends within two minutes (a lost wake-up hangs: SIGALRM ends it). Exit
 * 0 and "N rounds agreed", or 1 naming what went wrong.
 *
 *   pool_sleep [rounds]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "prism_kernels.h"

enum { TASKS = 4 };
static atomic_int runs[TASKS];
static atomic_int on_worker; /* tasks of this round run by a thread of the pool */
static pthread_t caller;

static void pause_us(long us) {
  struct timespec t = {us / 1000000, (us % 1000000) * 1000L};
  nanosleep(&t, NULL);
}

static void task(void *ctx, int t) {
  (void)ctx;
  if (!pthread_equal(pthread_self(), caller)) {
    pause_us(5000); /* the caller, done with its own tasks, waits past its spinning */
    atomic_fetch_add(&on_worker, 1);
  } else {
    pause_us(500); /* time for a sleeping worker to wake and take a task */
  }
  atomic_fetch_add(&runs[t], 1);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 300;
  pk_set_threads(2);
  caller = pthread_self();
  alarm(120);
  int woken = 0; /* rounds after a pause in which a worker ran a task */
  for (int r = 0; r < rounds; ++r) {
    for (int t = 0; t < TASKS; ++t) atomic_store(&runs[t], 0);
    atomic_store(&on_worker, 0);
    pk_parallel_for(TASKS, task, NULL);
    if (r > 0 && (r - 1) % 3 == 0 && atomic_load(&on_worker) > 0) ++woken;
    for (int t = 0; t < TASKS; ++t) {
      if (atomic_load(&runs[t]) != 1) {
        fprintf(stderr, "round %d: task %d ran %d times\n", r, t, atomic_load(&runs[t]));
        return 1;
      }
    }
    if (r % 3 == 0) pause_us(20000);
  }
  if (woken == 0) {
    fprintf(stderr, "no worker ran a task after any pause: the sleeping workers were not woken\n");
    return 1;
  }
  printf("%d rounds agreed; a worker took part after %d of %d pauses\n", rounds, woken, (rounds - 2) / 3 + 1);
  return 0;
}
