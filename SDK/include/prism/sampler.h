/*
 * prism/sampler.h — interface "prism.sampler/1": choose next tokens.
 *
 * The random state is owned by the host and passed in, so a run is
 * reproducible and resumable: the host checkpoints the state. The generator
 * is fixed by the ABI (xoshiro256**, helpers below) so every sampler plugin
 * consumes randomness the same documented way.
 */
#ifndef PRISM_SAMPLER_H
#define PRISM_SAMPLER_H

#include "base.h"

PRISM_EXTERN_C_BEGIN
PRISM_ASSUME_NONNULL_BEGIN

#define PRISM_SAMPLER_V1_ID "prism.sampler/1"

/* State of the xoshiro256** generator. Must not be all zero. */
typedef struct prism_rng {
  uint64_t s[4];
} prism_rng;

static inline uint64_t prism_rng_rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

/* Next 64 random bits (xoshiro256**, Blackman & Vigna). */
static inline uint64_t prism_rng_next(prism_rng *rng) {
  uint64_t *s = rng->s;
  uint64_t result = prism_rng_rotl(s[1] * 5u, 7) * 9u;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = prism_rng_rotl(s[3], 45);
  return result;
}

/* A double uniform in [0, 1) from the top 53 bits. */
static inline double prism_rng_uniform(prism_rng *rng) {
  return (double)(prism_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* Seed a state from one 64-bit seed with splitmix64 (never all zero). */
static inline void prism_rng_seed(prism_rng *rng, uint64_t seed) {
  int i;
  for (i = 0; i < 4; ++i) {
    uint64_t z = (seed += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    rng->s[i] = z ^ (z >> 31);
  }
}

typedef struct prism_sampler_v1 {
  uint32_t struct_size; /* sizeof(prism_sampler_v1) as the plugin knows it */
  uint32_t reserved;    /* 0 */

  /* Pick one token per row.
   *   logits      [rows][vocab] float32, row-major, borrowed; unnormalised
   *               log-probabilities (-INFINITY = forbidden token);
   *   rng         host-owned state, advanced in place;
   *   out_tokens  [rows], host-owned, filled with indices in [0, vocab).
   * Rows are processed in order 0..rows-1 and each consumes randomness only
   * from `rng`, so the same state and logits give the same tokens.
   * Sampling settings (temperature, top-k, top-p, min-p, greedy) come from
   * the instance's JSON config. rows may be 0. Fails with
   * PRISM_E_INVALID_ARGUMENT on vocab == 0 or a row with no finite logit.
   * [any-thread] */
  prism_status (*sample)(void *PRISM_NULLABLE instance, const float *logits,
                         uint32_t rows, uint32_t vocab, prism_rng *rng,
                         int32_t *out_tokens);
} prism_sampler_v1;

PRISM_STATIC_ASSERT(sizeof(prism_rng) == 32, "prism_rng size");
PRISM_STATIC_ASSERT(offsetof(prism_sampler_v1, sample) == 8,
                    "prism_sampler_v1.sample offset");

PRISM_ASSUME_NONNULL_END
PRISM_EXTERN_C_END

#endif /* PRISM_SAMPLER_H */
