/* Threads that come and go, as in a program embedding the kernels: each
 * runs a GEMM and a model's forward and backward pass (which give the
 * calling thread its own packing and attention scratch), then exits. Built
 * with -fsanitize=address by the tests: LeakSanitizer reports any scratch
 * an exited thread left behind (exit 23), and the program checks that
 * every thread got the results the main thread got (exit 1 otherwise).
 *
 *   scratch_threads [threads]
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_kernels.h"

enum { M = 200, N = 96, K = 300, ROWS = 6, STRIDE = 20 };
static const pk_dims dims = {.vocab = 23, .d_model = 32, .layers = 2, .heads = 2, .d_ff = 64, .max_len = 24};

static float A[M * K], B[K * N];
static int32_t tokens[ROWS * STRIDE];
static uint32_t lengths[ROWS];
static float grad[ROWS * STRIDE];

typedef struct result {
  float c[M * N];
  float logprobs[ROWS * STRIDE];
  float grad_sum;
  int failed;
} result;

static void compute(result *r) {
  pk_gemm(1, 0, M, N, K, A, M, B, N, 0.0f, r->c, N); /* Aᵀ: A is packed */
  pk_model *m = pk_model_new(dims);
  if (!m) {
    r->failed = 1;
    return;
  }
  size_t total = pk_make_layout(dims).total;
  float *p = pk_params(m);
  for (size_t i = 0; i < total; ++i) p[i] = (float)((i * 7919) % 1000) / 1000.0f * 0.2f - 0.1f;
  if (pk_logprobs_keep(m, tokens, lengths, ROWS, STRIDE, 1.0f, r->logprobs) != 0 || pk_backward_kept(m, grad) != 0)
    r->failed = 1;
  r->grad_sum = 0;
  for (size_t i = 0; i < total; ++i) r->grad_sum += pk_grads(m)[i];
  pk_model_free(m);
}

static void *thread_main(void *arg) {
  compute(arg);
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 8;
  for (int i = 0; i < M * K; ++i) A[i] = (float)(i % 17) / 17.0f - 0.5f;
  for (int i = 0; i < K * N; ++i) B[i] = (float)(i % 13) / 13.0f - 0.5f;
  for (int i = 0; i < ROWS * STRIDE; ++i) tokens[i] = (i * 5 + 1) % dims.vocab, grad[i] = (i % 3) - 1.0f;
  for (int r = 0; r < ROWS; ++r) lengths[r] = STRIDE - (uint32_t)r;
  static result expected, got;
  compute(&expected);
  if (expected.failed) {
    fprintf(stderr, "the main thread's pass failed\n");
    return 2;
  }
  for (int t = 0; t < threads; ++t) {
    memset(&got, 0, sizeof got);
    pthread_t thread;
    if (pthread_create(&thread, NULL, thread_main, &got) != 0) return 2;
    pthread_join(thread, NULL);
    if (got.failed || memcmp(got.c, expected.c, sizeof got.c) != 0 ||
        memcmp(got.logprobs, expected.logprobs, sizeof got.logprobs) != 0 || got.grad_sum != expected.grad_sum) {
      fprintf(stderr, "thread %d: results differ from the main thread's\n", t);
      return 1;
    }
  }
  printf("%d threads came and went, results agreed\n", threads);
  fflush(stdout); /* LeakSanitizer exits from its exit handler, before stdio flushes */
  return 0;
}
