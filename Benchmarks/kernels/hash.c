/* One hash over everything a build of the transformer kernels computes on
 * six model shapes (head sizes 8-32, d_ff 40-512, vocabularies 5-37,
 * ragged lengths, some sequences sharing a prefix): log-probs, gradients
 * from pk_backward and from pk_logprobs_keep + pk_backward_kept, shared
 * prefixes on and off, and decoding logits; at 1 and 2 threads; with the
 * CPU's widest kernels, with AVX2 forced, and with the portable model. A
 * kernel change meant to keep every result's bits must keep the three
 * hashes (Benchmarks/kernel-ab.sh --hash compares two builds).
 *
 *   hash LIB */
#include "prism_kernels.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t h;

static void mix(const void *bytes, size_t n) {
  const unsigned char *p = bytes;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
}

static unsigned state = 1;
static float uniform(void) { /* [-0.5, 0.5), the same on every libc */
  state = state * 1103515245u + 12345u;
  return (float)(state >> 8) / 16777216.0f - 0.5f;
}

#define LOAD(name) (name = dlsym(lib, #name)) == NULL

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: hash LIB\n");
    return 2;
  }
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "hash: %s\n", dlerror());
    return 1;
  }
  pk_model *(*pk_model_new)(pk_dims);
  void (*pk_model_free)(pk_model *);
  pk_layout (*pk_make_layout)(pk_dims);
  float *(*pk_params)(pk_model *), *(*pk_grads)(pk_model *);
  void (*pk_set_threads)(int), (*pk_model_use_portable)(pk_model *, int), (*pk_model_share_prefixes)(pk_model *, int);
  int (*pk_force_avx2)(int);
  const char *(*pk_kernels_name)(void);
  int (*pk_logprobs)(pk_model *, int, const int32_t *, const uint32_t *, int, int, float, float *);
  int (*pk_backward)(pk_model *, const int32_t *, const uint32_t *, int, int, float, const float *);
  int (*pk_logprobs_keep)(pk_model *, const int32_t *, const uint32_t *, int, int, float, float *);
  int (*pk_backward_kept)(pk_model *, const float *);
  int (*pk_decode_begin)(pk_model *, const int32_t *, const uint32_t *, int, int, float *);
  int (*pk_decode_step)(pk_model *, const int32_t *, float *);
  if (LOAD(pk_model_new) || LOAD(pk_model_free) || LOAD(pk_make_layout) || LOAD(pk_params) || LOAD(pk_grads) ||
      LOAD(pk_set_threads) || LOAD(pk_model_use_portable) || LOAD(pk_model_share_prefixes) || LOAD(pk_force_avx2) ||
      LOAD(pk_kernels_name) || LOAD(pk_logprobs) || LOAD(pk_backward) || LOAD(pk_logprobs_keep) ||
      LOAD(pk_backward_kept) || LOAD(pk_decode_begin) || LOAD(pk_decode_step)) {
    fprintf(stderr, "hash: %s lacks a kernel entry point\n", argv[1]);
    return 1;
  }
  /* d_model, heads, d_ff, vocab, max_len, batch */
  static const int shapes[][6] = {{128, 4, 512, 32, 64, 24}, {100, 4, 200, 37, 40, 24}, {48, 2, 100, 37, 19, 24},
                                  {64, 2, 48, 11, 33, 24},   {40, 2, 40, 7, 33, 24},     {32, 2, 96, 5, 64, 150}};
  for (int mode = 0; mode < 3; ++mode) { /* widest kernels, AVX2 forced, portable model */
    h = 1469598103934665603ull;
    pk_force_avx2(mode == 1);
    for (int threads = 1; threads <= 2; ++threads) {
      pk_set_threads(threads);
      for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
        for (int share = 0; share < 2; ++share) {
          const int *x = shapes[s];
          pk_dims d = {.vocab = x[3], .d_model = x[0], .layers = 2, .heads = x[1], .d_ff = x[2], .max_len = x[4]};
          int B = x[5], T = d.max_len < 32 ? d.max_len : 32;
          pk_model *m = pk_model_new(d);
          size_t n = pk_make_layout(d).total;
          int32_t *tok = malloc(sizeof(int32_t) * (size_t)B * T), next[256];
          uint32_t *len = malloc(sizeof(uint32_t) * (size_t)B), prompt[256];
          float *g = malloc(sizeof(float) * (size_t)B * T), *lp = malloc(sizeof(float) * (size_t)B * T);
          float *logits = malloc(sizeof(float) * (size_t)B * d.vocab);
          if (!m || !tok || !len || !g || !lp || !logits || B > 256) {
            fprintf(stderr, "hash: out of memory\n");
            return 1;
          }
          pk_model_use_portable(m, mode == 2);
          pk_model_share_prefixes(m, share);
          state = 1 + (unsigned)s;
          float *p = pk_params(m);
          for (size_t i = 0; i < n; ++i) p[i] = uniform() * 0.2f;
          for (int i = 0; i < B * T; ++i) tok[i] = (int32_t)((uniform() + 0.5f) * d.vocab) % d.vocab, g[i] = uniform();
          for (int b = 0; b < B; ++b) len[b] = (uint32_t)(T - b % 5);
          for (int b = 1; b < B; b += 3) memcpy(tok + (size_t)b * T, tok, 6 * sizeof(int32_t)); /* shared prefixes */
          pk_logprobs(m, 0, tok, len, B, T, 0.9f, lp);
          mix(lp, sizeof(float) * (size_t)B * T);
          memset(pk_grads(m), 0, sizeof(float) * n);
          pk_backward(m, tok, len, B, T, 0.9f, g);
          mix(pk_grads(m), sizeof(float) * n);
          pk_logprobs_keep(m, tok, len, B, T, 1.0f, lp);
          mix(lp, sizeof(float) * (size_t)B * T);
          pk_backward_kept(m, g);
          mix(pk_grads(m), sizeof(float) * n);
          for (int b = 0; b < B; ++b) prompt[b] = (uint32_t)(3 + b % 4);
          pk_decode_begin(m, tok, prompt, B, T, logits);
          mix(logits, sizeof(float) * (size_t)B * d.vocab);
          for (int k = 0; k < 5; ++k) {
            for (int b = 0; b < B; ++b) next[b] = tok[(size_t)b * T + prompt[b] + k];
            pk_decode_step(m, next, logits);
            mix(logits, sizeof(float) * (size_t)B * d.vocab);
          }
          pk_model_free(m);
          free(tok), free(len), free(g), free(lp), free(logits);
        }
      }
    }
    printf("%-16s %016llx\n", mode == 0 ? pk_kernels_name() : mode == 1 ? "forced AVX2" : "portable model",
           (unsigned long long)h);
  }
  pk_force_avx2(0);
  return 0;
}
