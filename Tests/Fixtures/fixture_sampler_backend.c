/* A tiny sampler and a tiny backend in one plugin, for the adapter tests.
 *
 * Sampler: token = prism_rng_next(rng) % vocab, redrawn while the logit is
 * -inf (so a test can predict it with the Swift RandomState).
 *
 * Backend: a unigram model over 4 tokens (0 = pad, 1 = bos, 2 = 'a',
 * 3 = 'b'): logits are a parameter vector w, identical at every position,
 * so log p(tok) = log_softmax(w / T)[tok]. backward accumulates
 * dL/dw; optimizer_step is plain SGD (lr * grad). Enough to check shapes,
 * conventions and the plumbing of every backend call.
 *
 * -DCRASH_ON_DECODE=N makes the N-th decode_step call abort (SIGABRT), for
 * the tests of a backend that dies mid-run. */
#include <prism/prism.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V 4
typedef struct model {
  float w[V], ref[V], grad[V];
  uint32_t rows;
} model;

static prism_status sample(void *inst, const float *logits, uint32_t rows,
                           uint32_t vocab, prism_rng *rng, int32_t *out) {
  (void)inst;
  for (uint32_t r = 0; r < rows; ++r) {
    int32_t token;
    do {
      token = (int32_t)(prism_rng_next(rng) % vocab);
    } while (isinf(logits[r * vocab + (uint32_t)token]));
    out[r] = token;
  }
  return PRISM_OK;
}
static const prism_sampler_v1 sampler = {sizeof(prism_sampler_v1), 0, sample};

static void log_softmax(const float *w, float t, float *out) {
  float m = -INFINITY, s = 0;
  for (int i = 0; i < V; ++i) m = fmaxf(m, w[i] / t);
  for (int i = 0; i < V; ++i) s += expf(w[i] / t - m);
  for (int i = 0; i < V; ++i) out[i] = w[i] / t - m - logf(s);
}

static prism_status get_info(void *inst, prism_backend_info *out) {
  (void)inst;
  out->vocab_size = V;
  out->bos_token = 1;
  out->eos_token = -1;
  out->pad_token = 0;
  out->max_seq_len = 64;
  out->parameter_count = V;
  return PRISM_OK;
}

static prism_status tokenize(void *inst, prism_str text, int32_t *out,
                             size_t capacity, size_t *count) {
  (void)inst;
  *count = text.len;
  for (size_t i = 0; i < text.len; ++i) {
    if (text.data[i] != 'a' && text.data[i] != 'b') {
      return PRISM_E_INVALID_ARGUMENT;
    }
  }
  if (capacity < text.len) return PRISM_E_BUFFER_TOO_SMALL;
  for (size_t i = 0; i < text.len; ++i) out[i] = text.data[i] == 'a' ? 2 : 3;
  return PRISM_OK;
}

static prism_status detokenize(void *inst, const int32_t *tokens, size_t n,
                               char *out, size_t capacity, size_t *len) {
  (void)inst;
  size_t k = 0;
  for (size_t i = 0; i < n; ++i) k += tokens[i] >= 2;
  *len = k;
  if (capacity < k) return PRISM_E_BUFFER_TOO_SMALL;
  k = 0;
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] >= 2) out[k++] = tokens[i] == 2 ? 'a' : 'b';
  }
  return PRISM_OK;
}

static void fill_logits(const model *m, uint32_t rows, float *out) {
  for (uint32_t r = 0; r < rows; ++r) memcpy(out + r * V, m->w, sizeof m->w);
}

static prism_status decode_begin(void *inst, const prism_token_batch *b,
                                 float *out) {
  model *m = inst;
  m->rows = b->rows;
  fill_logits(m, b->rows, out);
  return PRISM_OK;
}

static prism_status decode_step(void *inst, const int32_t *tokens,
                                float *out) {
#ifdef CRASH_ON_DECODE
  static int decode_calls = 0;
  if (++decode_calls == CRASH_ON_DECODE) abort();
#endif
  model *m = inst;
  (void)tokens;
  if (m->rows == 0) return PRISM_E_STATE;
  fill_logits(m, m->rows, out);
  return PRISM_OK;
}

static prism_status logprobs(void *inst, const prism_token_batch *b,
                             int32_t which, float t, float *out) {
  model *m = inst;
  float lp[V];
  log_softmax(which == PRISM_MODEL_REFERENCE ? m->ref : m->w, t, lp);
  for (uint32_t r = 0; r < b->rows; ++r) {
    for (uint32_t k = 0; k < b->stride; ++k) {
      out[r * b->stride + k] =
          (k >= 1 && k < b->lengths[r]) ? lp[b->tokens[r * b->stride + k]] : 0;
    }
  }
  return PRISM_OK;
}

static prism_status backward(void *inst, const prism_token_batch *b, float t,
                             const float *g) {
  model *m = inst;
  float lp[V];
  log_softmax(m->w, t, lp);
  for (uint32_t r = 0; r < b->rows; ++r) {
    for (uint32_t k = 1; k < b->lengths[r]; ++k) {
      float gk = g[r * b->stride + k];
      int32_t tok = b->tokens[r * b->stride + k];
      for (int i = 0; i < V; ++i) {
        m->grad[i] += gk * ((i == tok) - expf(lp[i])) / t;
      }
    }
  }
  return PRISM_OK;
}

static prism_status optimizer_step(void *inst, const prism_optimizer_step *s,
                                   prism_optimizer_report *report) {
  model *m = inst;
  float norm = 0;
  for (int i = 0; i < V; ++i) norm += m->grad[i] * m->grad[i];
  if (report) report->grad_norm = sqrtf(norm);
  for (int i = 0; i < V; ++i) {
    m->w[i] -= (float)s->learning_rate * m->grad[i];
    m->grad[i] = 0;
  }
  return PRISM_OK;
}

static prism_status zero_grad(void *inst) {
  memset(((model *)inst)->grad, 0, sizeof(float) * V);
  return PRISM_OK;
}

static prism_status snapshot(void *inst) {
  model *m = inst;
  memcpy(m->ref, m->w, sizeof m->w);
  return PRISM_OK;
}

static char path_buffer[4096];
static const char *cpath(prism_str p) {
  size_t n = p.len < sizeof path_buffer - 1 ? p.len : sizeof path_buffer - 1;
  memcpy(path_buffer, p.data, n);
  path_buffer[n] = 0;
  return path_buffer;
}

static prism_status save(void *inst, prism_str path) {
  FILE *f = fopen(cpath(path), "wb");
  if (!f) return PRISM_E_IO;
  size_t ok = fwrite(((model *)inst)->w, sizeof(float), V, f);
  fclose(f);
  return ok == V ? PRISM_OK : PRISM_E_IO;
}

static prism_status load(void *inst, prism_str path) {
  float w[V];
  FILE *f = fopen(cpath(path), "rb");
  if (!f) return PRISM_E_IO;
  size_t ok = fread(w, sizeof(float), V, f);
  fclose(f);
  if (ok != V) return PRISM_E_IO;
  memcpy(((model *)inst)->w, w, sizeof w);
  return PRISM_OK;
}

static const prism_backend_v1 backend = {
    sizeof(prism_backend_v1), 0, get_info, tokenize, detokenize,
    decode_begin, decode_step, logprobs, backward, optimizer_step, zero_grad,
    snapshot, save, load, NULL, NULL, NULL, NULL};

static prism_status create(const prism_host *host, prism_str config,
                           void **out) {
  (void)config;
  const char *hello = "fixture created";
  prism_str msg = {hello, strlen(hello)};
  host->log(host->host_ctx, PRISM_LOG_DEBUG, msg);
  model *m = calloc(1, sizeof *m);
  if (!m) return PRISM_E_OUT_OF_MEMORY;
  m->w[2] = 1.0f;
  memcpy(m->ref, m->w, sizeof m->w);
  *out = m;
  return PRISM_OK;
}

static void destroy(void *inst) { free(inst); }

static const void *get_interface(void *inst, const char *id) {
  (void)inst;
  if (strcmp(id, PRISM_SAMPLER_V1_ID) == 0) return &sampler;
  if (strcmp(id, PRISM_BACKEND_V1_ID) == 0) return &backend;
  return NULL;
}

static prism_str last_error(void *inst) {
  (void)inst;
  prism_str s = {"", 0};
  return s;
}

static const prism_plugin_entry entry = {
    sizeof(prism_plugin_entry), PRISM_ABI_MAJOR, PRISM_ABI_MINOR,
    "org.prism.test.unigram", "Unigram fixture", "0.0.1",
    "A 4-token unigram backend and an rng-driven sampler, for tests.",
    create, destroy, get_interface, last_error};

PRISM_EXPORT const prism_plugin_entry *prism_get_plugin_entry(uint16_t major) {
  return major == PRISM_ABI_MAJOR ? &entry : NULL;
}
