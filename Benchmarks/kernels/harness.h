/* What the kernel A/B programs (ab.c, gemm_ab.c) share: a clock, an order
 * for qsort, and a symbol that must be there. */
#ifndef PRISM_BENCHMARK_HARNESS_H
#define PRISM_BENCHMARK_HARNESS_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* `name` from the library at `path`; exits naming both when it lacks it
 * (`program` starts the message). */
static inline void *symbol(const char *program, void *lib, const char *path, const char *name) {
  void *s = dlsym(lib, name);
  if (!s) {
    fprintf(stderr, "%s: %s has no %s\n", program, path, name);
    exit(1);
  }
  return s;
}

#endif
