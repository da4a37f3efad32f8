/*
 * prism/reward.h — interface "prism.reward/1": score a batch of completions.
 *
 * Every peer system hands its reward function the whole batch, so this one
 * does too. A reward is a double; NaN means "not applicable" (the host then
 * excludes the sample from the group baseline and gives it advantage 0).
 * `correct` is the verdict used to classify groups (all-negative, mixed,
 * all-positive); it may differ from reward > 0 (e.g. shaped rewards).
 *
 * On the shipped arithmetic task a sample is: prompt "12+34+7=", completion
 * (the model's text after the prompt, no end token) "12+34=46;46+7=53;#53",
 * reference "53", metadata_json "{}" (Documentation/ABI.md has the table).
 */
#ifndef PRISM_REWARD_H
#define PRISM_REWARD_H

#include "base.h"

PRISM_EXTERN_C_BEGIN
PRISM_ASSUME_NONNULL_BEGIN

#define PRISM_REWARD_V1_ID "prism.reward/1"

/* One sample to score. All strings are host-owned and borrowed for the
 * duration of the `score` call. Element of an array: frozen for
 * "prism.reward/1" (extra data travels in metadata_json). */
typedef struct prism_reward_sample {
  prism_str prompt;        /* the prompt the completion answers */
  prism_str completion;    /* the model's text, without the prompt */
  prism_str reference;     /* reference final answer; may be empty */
  prism_str metadata_json; /* a JSON object from the dataset, or empty */
} prism_reward_sample;

typedef struct prism_reward_v1 {
  uint32_t struct_size; /* sizeof(prism_reward_v1) as the plugin knows it */
  uint32_t reserved;    /* 0 */

  /* Score `count` samples. `samples` is borrowed ([count]); the outputs are
   * host-owned arrays of `count` elements that the plugin fills:
   *   out_reward[i]   the reward of sample i; NaN = not applicable;
   *   out_correct[i]  1 if sample i is correct, else 0.
   * `count` may be 0 (then the arrays may be dangling and must not be
   * touched). On failure returns non-zero; the host discards the outputs.
   * [any-thread] */
  prism_status (*score)(void *PRISM_NULLABLE instance,
                        const prism_reward_sample *samples, size_t count,
                        double *out_reward, uint8_t *out_correct);
} prism_reward_v1;

PRISM_STATIC_ASSERT(sizeof(prism_reward_sample) == 8 * sizeof(void *),
                    "prism_reward_sample size");
PRISM_STATIC_ASSERT(offsetof(prism_reward_sample, reference) ==
                        4 * sizeof(void *),
                    "prism_reward_sample.reference offset");
PRISM_STATIC_ASSERT(offsetof(prism_reward_v1, score) == 8,
                    "prism_reward_v1.score offset");

PRISM_ASSUME_NONNULL_END
PRISM_EXTERN_C_END

#endif /* PRISM_REWARD_H */
