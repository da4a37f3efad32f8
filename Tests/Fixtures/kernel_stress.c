/* Stress test for the transformer kernels' shared thread pool.
 *
 * Several threads (default 2) hammer the kernels at once, each on data of
 * its own, and check every result:
 *   - pool:  jobs of alternating small and large task counts straight on
 *            pk_parallel_for and pk_parallel_ranges (whose threads take
 *            tasks from each other's ranges when done with their own);
 *            every task of every job must run exactly once;
 *   - gemm:  the model's GEMM shapes and a weight gradient's, bit for bit
 *            equal to the result the same thread computed alone before the
 *            race started;
 *   - model: forward log-probs and a backward pass of a small transformer
 *            (AVX2 kernels on even threads, portable ones on odd threads),
 *            and a prefill and two decoding steps of 40 rows (split into
 *            row parts, each on one thread), bit for bit equal to the
 *            serial results.
 * Exit 0 when everything agreed, 1 on the first disagreement (naming thread,
 * iteration and check), 2 on a usage or allocation error. The tests build it
 * with cc together with the kernels' sources, once plain and once with
 * -fsanitize=thread. `load` more threads spin on arithmetic meanwhile, so
 * the pool's workers are preempted at awkward moments (the race this test
 * was written for showed only on a loaded machine).
 *
 *   kernel_stress [iterations] [threads] [load]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "prism_kernels.h"

typedef struct shape {
  int m, n, k, ta;
} shape;

/* Tall (row split), short (column split, the decode shape), a weight
 * gradient's Aᵀ·B over three KC blocks (split along K, its later blocks'
 * partials added in order) and one that runs inline: every path through
 * pk_parallel_for. */
static const shape shapes[] = {{384, 128, 128, 0}, {64, 384, 128, 0}, {16, 512, 128, 0}, {40, 48, 600, 1},
                               {8, 8, 8, 0}};
enum { SHAPES = sizeof shapes / sizeof shapes[0], ROWS = 8, STRIDE = 24, MAX_TASKS = 97, VOCAB = 40, DEC_ROWS = 40,
       DEC_STEPS = 2 };

static const pk_dims dims = {.vocab = VOCAB, .d_model = 64, .layers = 2, .heads = 4, .d_ff = 256, .max_len = 32};

typedef struct worker {
  int iterations;
  float *a[SHAPES], *b[SHAPES], *expected[SHAPES], *c[SHAPES];
  pk_model *model;
  int32_t tokens[ROWS * STRIDE];
  uint32_t lengths[ROWS];
  float logprobs[ROWS * STRIDE], expected_logprobs[ROWS * STRIDE];
  float *expected_grads;
  int32_t dec_tokens[DEC_ROWS * STRIDE];
  uint32_t dec_prompts[DEC_ROWS];
  float dec_logits[(DEC_STEPS + 1) * DEC_ROWS * VOCAB], expected_dec_logits[(DEC_STEPS + 1) * DEC_ROWS * VOCAB];
  atomic_int runs[MAX_TASKS];
  int failed_iteration;
  const char *failed_check;
} worker;

static void fill(float *x, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1103515245u + 12345u;
    x[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
  }
}

static void gemm(worker *w, int s, float *out) {
  const shape *sh = &shapes[s];
  pk_gemm(sh->ta, 0, sh->m, sh->n, sh->k, w->a[s], sh->ta ? sh->m : sh->k, w->b[s], sh->n, 0.0f, out, sh->n);
}

static void count_task(void *ctx, int task) { atomic_fetch_add(&((worker *)ctx)->runs[task], 1); }

/* Runs a job of `tasks` tasks (in ranges per thread if `ranges`); 1 if
 * every task ran exactly once. */
static int exactly_once(worker *w, int tasks, int ranges) {
  for (int t = 0; t < tasks; ++t) atomic_store(&w->runs[t], 0);
  if (ranges) pk_parallel_ranges(tasks, count_task, w);
  else pk_parallel_for(tasks, count_task, w);
  for (int t = 0; t < tasks; ++t) {
    if (atomic_load(&w->runs[t]) != 1) return 0;
  }
  return 1;
}

/* Log-probs, then the gradient of sum(logprobs) from zero. */
static int model_pass(worker *w, float *logprobs) {
  memset(pk_grads(w->model), 0, pk_make_layout(dims).total * sizeof(float));
  if (pk_logprobs(w->model, 0, w->tokens, w->lengths, ROWS, STRIDE, 1.0f, logprobs) != 0) return -1;
  float ones[ROWS * STRIDE];
  for (int i = 0; i < ROWS * STRIDE; ++i) ones[i] = 1.0f;
  return pk_backward(w->model, w->tokens, w->lengths, ROWS, STRIDE, 1.0f, ones);
}

/* A prefill and DEC_STEPS decoding steps, every row's logits. */
static int decode(worker *w, float *logits) {
  const int V = dims.vocab;
  if (pk_decode_begin(w->model, w->dec_tokens, w->dec_prompts, DEC_ROWS, STRIDE, logits) != 0) return -1;
  for (int step = 1; step <= DEC_STEPS; ++step) {
    int32_t next[DEC_ROWS];
    for (int r = 0; r < DEC_ROWS; ++r) next[r] = w->dec_tokens[r * STRIDE + (int)w->dec_prompts[r] + step - 1];
    if (pk_decode_step(w->model, next, logits + (size_t)step * DEC_ROWS * V) != 0) return -1;
  }
  return 0;
}

static atomic_int racing = 1;

/* Competing load: floating-point work until the racers are done. */
static void *spin(void *arg) {
  volatile double x = (double)(size_t)arg;
  while (atomic_load_explicit(&racing, memory_order_relaxed)) {
    for (int i = 0; i < 10000; ++i) x = x * 1.0000001 + 1e-9;
  }
  return NULL;
}

static void *run(void *arg) {
  worker *w = arg;
  size_t P = pk_make_layout(dims).total;
  for (int it = 0; it < w->iterations && !w->failed_check; ++it) {
    for (int round = 0; round < 20 && !w->failed_check; ++round) {
      int ranges = round % 2;
      if (!exactly_once(w, 2, ranges) || !exactly_once(w, MAX_TASKS, ranges) || !exactly_once(w, 3, ranges)) {
        w->failed_check = "pool: a task did not run exactly once";
      }
    }
    for (int s = 0; s < SHAPES && !w->failed_check; ++s) {
      gemm(w, s, w->c[s]);
      if (memcmp(w->c[s], w->expected[s], (size_t)shapes[s].m * shapes[s].n * sizeof(float))) {
        w->failed_check = "gemm: result differs from the serial one";
      }
    }
    if (!w->failed_check) {
      if (model_pass(w, w->logprobs) != 0) {
        w->failed_check = "model: a kernel call failed";
      } else if (memcmp(w->logprobs, w->expected_logprobs, sizeof w->logprobs)) {
        w->failed_check = "model: log-probs differ from the serial ones";
      } else if (memcmp(pk_grads(w->model), w->expected_grads, P * sizeof(float))) {
        w->failed_check = "model: gradients differ from the serial ones";
      } else if (decode(w, w->dec_logits) != 0) {
        w->failed_check = "model: a decoding call failed";
      } else if (memcmp(w->dec_logits, w->expected_dec_logits, sizeof w->dec_logits)) {
        w->failed_check = "model: decoding logits differ from the serial ones";
      }
    }
    if (w->failed_check) w->failed_iteration = it;
  }
  return NULL;
}

static int setup(worker *w, int t, int iterations) {
  memset(w, 0, sizeof *w);
  w->iterations = iterations;
  w->failed_iteration = -1;
  for (int s = 0; s < SHAPES; ++s) {
    size_t an = (size_t)shapes[s].m * shapes[s].k, bn = (size_t)shapes[s].k * shapes[s].n,
           cn = (size_t)shapes[s].m * shapes[s].n;
    w->a[s] = malloc(an * sizeof(float));
    w->b[s] = malloc(bn * sizeof(float));
    w->expected[s] = malloc(cn * sizeof(float));
    w->c[s] = malloc(cn * sizeof(float));
    if (!w->a[s] || !w->b[s] || !w->expected[s] || !w->c[s]) return -1;
    fill(w->a[s], an, 17u * (unsigned)t + (unsigned)s);
    fill(w->b[s], bn, 31u * (unsigned)t + 7u * (unsigned)s + 1u);
    gemm(w, s, w->expected[s]); /* alone: the reference */
  }
  w->model = pk_model_new(dims);
  size_t P = pk_make_layout(dims).total;
  w->expected_grads = malloc(P * sizeof(float));
  if (!w->model || !w->expected_grads) return -1;
  /* Odd threads' models run the portable kernels: a choice that leaked
   * from one model to another would change the other's results. */
  pk_model_use_portable(w->model, t % 2);
  fill(pk_params(w->model), P, 101u + (unsigned)t);
  for (size_t i = 0; i < P; ++i) pk_params(w->model)[i] *= 0.2f;
  for (int r = 0; r < ROWS; ++r) {
    w->lengths[r] = (uint32_t)(STRIDE - r);
    for (int c = 0; c < STRIDE; ++c) w->tokens[r * STRIDE + c] = (r * 7 + c * 3 + t) % dims.vocab;
  }
  if (model_pass(w, w->expected_logprobs) != 0) return -1;
  memcpy(w->expected_grads, pk_grads(w->model), P * sizeof(float));
  for (int r = 0; r < DEC_ROWS; ++r) {
    w->dec_prompts[r] = (uint32_t)(3 + r % 5);
    for (int c = 0; c < STRIDE; ++c) w->dec_tokens[r * STRIDE + c] = (r * 5 + c * 11 + t) % dims.vocab;
  }
  /* The reference on one thread (the serial split). */
  int before = pk_threads();
  pk_set_threads(1);
  int status = decode(w, w->expected_dec_logits);
  pk_set_threads(before);
  return status;
}

int main(int argc, char **argv) {
  int iterations = argc > 1 ? atoi(argv[1]) : 200;
  int count = argc > 2 ? atoi(argv[2]) : 2;
  int load = argc > 3 ? atoi(argv[3]) : 0;
  if (iterations < 1 || count < 1 || count > 16 || load < 0 || load > 16) {
    fprintf(stderr, "usage: kernel_stress [iterations >= 1] [threads 1-16] [load 0-16]\n");
    return 2;
  }
  pk_set_threads(2);
  static worker workers[16];
  for (int t = 0; t < count; ++t) {
    if (setup(&workers[t], t, iterations) != 0) {
      fprintf(stderr, "kernel_stress: out of memory\n");
      return 2;
    }
  }
  pthread_t threads[16], loaders[16];
  for (int t = 0; t < load; ++t) {
    if (pthread_create(&loaders[t], NULL, spin, (void *)(size_t)t) != 0) {
      fprintf(stderr, "kernel_stress: pthread_create failed\n");
      return 2;
    }
  }
  for (int t = 0; t < count; ++t) {
    if (pthread_create(&threads[t], NULL, run, &workers[t]) != 0) {
      fprintf(stderr, "kernel_stress: pthread_create failed\n");
      return 2;
    }
  }
  for (int t = 0; t < count; ++t) pthread_join(threads[t], NULL);
  atomic_store(&racing, 0);
  for (int t = 0; t < load; ++t) pthread_join(loaders[t], NULL);
  int status = 0;
  for (int t = 0; t < count; ++t) {
    if (workers[t].failed_check) {
      printf("thread %d, iteration %d: %s\n", t, workers[t].failed_iteration, workers[t].failed_check);
      status = 1;
    }
  }
  if (status == 0) printf("%d threads x %d iterations agreed with their serial results\n", count, iterations);
  return status;
}
