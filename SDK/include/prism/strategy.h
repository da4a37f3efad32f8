/*
 * prism/strategy.h — interface "prism.strategy/1" (ABI 1.1): what to do with
 * a step's groups, in particular the all-negative ones.
 *
 * The host collects a step's groups (generates or reads them, scores them
 * with the reward plugin) and then, for each group:
 *   1. asks `wants_feedback` whether the judge should see it (a strategy
 *      that never needs the judge leaves the function NULL);
 *   2. asks `dispose` whether to keep, drop or resample it (NULL: keep);
 * and finally calls `advantages` once on the groups it kept, which returns
 * one advantage per completion and, optionally, one per completion token.
 * The host turns the advantages into the clipped policy-gradient objective;
 * a strategy never sees the model.
 *
 * A strategy that needs the judge sets PRISM_STRATEGY_NEEDS_JUDGE in
 * `flags`: a run that configures no judge is then refused at start.
 */
#ifndef PRISM_STRATEGY_H
#define PRISM_STRATEGY_H

#include "base.h"

PRISM_EXTERN_C_BEGIN
PRISM_ASSUME_NONNULL_BEGIN

#define PRISM_STRATEGY_V1_ID "prism.strategy/1"

/* prism_strategy_v1.flags */
#define PRISM_STRATEGY_NEEDS_JUDGE 1u /* the run must configure a judge */

/* One group. Host-owned, borrowed for the call; it may grow at the end
 * (read struct_size before reading later fields). */
typedef struct prism_strategy_group {
  uint32_t struct_size; /* sizeof(prism_strategy_group) as the host knows it */
  uint32_t count;       /* G, the number of completions; may be 0 */
  const double *rewards;         /* [count] the reward plugin's; NaN = not applicable */
  const uint8_t *correct;        /* [count] 1 = correct */
  const uint32_t *token_counts;  /* [count] completion lengths in tokens */
  /* The judge's answer, or NULL when the judge was not asked or failed:
   * scores in [0, 1] (NaN = no opinion), first wrong step (-1 = none). */
  const double *PRISM_NULLABLE scores;      /* [count] */
  const int32_t *PRISM_NULLABLE first_error; /* [count] */
  /* Since ABI 1.2 (check struct_size first), NULL when `scores` is: the
   * index of the first completion token of the first wrong step (the host
   * maps the judge's byte span to tokens), -1 when there is no error or the
   * judge did not say where it is. */
  const int32_t *PRISM_NULLABLE first_error_token; /* [count] */
} prism_strategy_group;

/* Where `advantages` writes. Host-owned arrays, pre-filled as stated. */
typedef struct prism_strategy_output {
  uint32_t struct_size; /* sizeof(prism_strategy_output) as the host knows it */
  uint32_t reserved;    /* 0 */
  /* [total completions], groups one after another; pre-filled with 0. */
  double *advantages;
  /* [total completions] the rewards after the strategy's shaping (reported
   * as metrics, e.g. SGPO's graded rewards); pre-filled with the input. */
  double *rewards;
  /* [total completion tokens], completions one after another in group
   * order, token_counts[i] values each; pre-filled with NaN, which means
   * "this completion's advantage". Write finite values to credit tokens of
   * a completion differently. */
  double *token_advantages;
} prism_strategy_output;

typedef struct prism_strategy_v1 {
  uint32_t struct_size; /* sizeof(prism_strategy_v1) as the plugin knows it */
  uint32_t flags;       /* PRISM_STRATEGY_* */

  /* Whether the judge should see `group` (its scores are NULL here).
   * *out_wants is pre-filled with 0. NULL: never. [any-thread] */
  prism_status (*PRISM_NULLABLE wants_feedback)(void *PRISM_NULLABLE instance,
                                                const prism_strategy_group *group,
                                                uint8_t *out_wants);

  /* Keep, drop or resample a scored (and maybe judged) group:
   * *out_disposition is pre-filled with PRISM_DISPOSITION_KEEP (feedback.h).
   * The judge's own disposition, when not KEEP, takes precedence. On
   * failure the host drops the group and counts the error. NULL: keep
   * every group. [any-thread] */
  prism_status (*PRISM_NULLABLE dispose)(void *PRISM_NULLABLE instance,
                                         const prism_strategy_group *group,
                                         int32_t *out_disposition);

  /* Advantages for the `group_count` groups kept this step (`groups` is
   * [group_count], borrowed). Every value written must be finite. On
   * failure the host skips the update for this step and counts the error.
   * [any-thread] */
  prism_status (*advantages)(void *PRISM_NULLABLE instance,
                             const prism_strategy_group *groups,
                             uint32_t group_count,
                             const prism_strategy_output *out);
} prism_strategy_v1;

PRISM_STATIC_ASSERT(offsetof(prism_strategy_group, rewards) == 8,
                    "prism_strategy_group.rewards offset");
PRISM_STATIC_ASSERT(sizeof(prism_strategy_group) == 8 + 6 * sizeof(void *),
                    "prism_strategy_group size");
PRISM_STATIC_ASSERT(sizeof(prism_strategy_output) == 8 + 3 * sizeof(void *),
                    "prism_strategy_output size");
PRISM_STATIC_ASSERT(offsetof(prism_strategy_v1, advantages) == 8 + 2 * sizeof(void *),
                    "prism_strategy_v1.advantages offset");

PRISM_ASSUME_NONNULL_END
PRISM_EXTERN_C_END

#endif /* PRISM_STRATEGY_H */
