/* Two builds of the transformer kernels, each a shared library, timed on
 * the reference training pass (pk_logprobs_keep + pk_backward_kept, batch
 * 64 x 32, d_model 128, 2 layers, 4 heads, d_ff 512, vocab 32) with their
 * passes alternated in one process: a VM's speed moves from second to
 * second, and timing one build after the other compares two different
 * machines. Prints each build's best, 10th percentile and median pass.
 *
 *   ab LIB_A LIB_B [THREADS] [PASSES]   (Benchmarks/kernel-ab.sh builds them) */
#include "harness.h"
#include "prism_kernels.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct build {
  const char *path;
  pk_model *model;
  int (*keep)(pk_model *, const int32_t *, const uint32_t *, int, int, float, float *);
  int (*backward)(pk_model *, const float *);
  double *times;
} build;

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: ab LIB_A LIB_B [THREADS] [PASSES]\n");
    return 2;
  }
  int threads = argc > 3 ? atoi(argv[3]) : 2, passes = argc > 4 ? atoi(argv[4]) : 200;
  if (threads < 1 || passes < 1) {
    fprintf(stderr, "ab: THREADS and PASSES must be positive\n");
    return 2;
  }
  enum { B = 64, T = 32 };
  pk_dims dims = {.vocab = 32, .d_model = 128, .layers = 2, .heads = 4, .d_ff = 512, .max_len = 64};
  static int32_t tokens[B * T];
  static uint32_t lengths[B];
  static float grad[B * T], logprobs[B * T];
  srand(7);
  for (int i = 0; i < B * T; ++i) tokens[i] = 3 + rand() % 29, grad[i] = -1.0f / (B * T);
  for (int b = 0; b < B; ++b) lengths[b] = T;
  build builds[2];
  for (int k = 0; k < 2; ++k) {
    build *x = &builds[k];
    x->path = argv[1 + k];
    void *lib = dlopen(x->path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      fprintf(stderr, "ab: %s\n", dlerror());
      return 1;
    }
    pk_model *(*model_new)(pk_dims) = symbol("ab", lib, x->path, "pk_model_new");
    pk_layout (*layout)(pk_dims) = symbol("ab", lib, x->path, "pk_make_layout");
    float *(*params)(pk_model *) = symbol("ab", lib, x->path, "pk_params");
    void (*set_threads)(int) = symbol("ab", lib, x->path, "pk_set_threads");
    x->keep = symbol("ab", lib, x->path, "pk_logprobs_keep");
    x->backward = symbol("ab", lib, x->path, "pk_backward_kept");
    set_threads(threads);
    x->model = model_new(dims);
    size_t n = layout(dims).total;
    float *p = params(x->model);
    srand(1);
    for (size_t i = 0; i < n; ++i) p[i] = ((float)rand() / (float)RAND_MAX - 0.5f) * 0.1f;
    x->times = malloc((size_t)passes * sizeof(double));
    if (!x->model || !x->times) {
      fprintf(stderr, "ab: out of memory\n");
      return 1;
    }
  }
  for (int r = -3; r < passes; ++r) /* three warm-up rounds */
    for (int i = 0; i < 2; ++i) {
      build *x = &builds[(r & 1) ? 1 - i : i]; /* A first in even rounds, B first in odd */
      double t = now();
      if (x->keep(x->model, tokens, lengths, B, T, 1.0f, logprobs) || x->backward(x->model, grad)) {
        fprintf(stderr, "ab: a pass of %s failed\n", x->path);
        return 1;
      }
      if (r >= 0) x->times[r] = now() - t;
      usleep(2000);
    }
  printf("training pass, %d thread(s), %d alternated passes each (ms):\n", threads, passes);
  for (int k = 0; k < 2; ++k) {
    qsort(builds[k].times, (size_t)passes, sizeof(double), by_value);
    printf("  %c  best %.2f  p10 %.2f  median %.2f   %s\n", 'A' + k, builds[k].times[0] * 1e3,
           builds[k].times[passes / 10] * 1e3, builds[k].times[passes / 2] * 1e3, builds[k].path);
  }
  return 0;
}
