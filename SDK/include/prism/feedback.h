/*
 * prism/feedback.h — interface "prism.feedback/1": a judge looks at a group.
 *
 * The host calls `assess` with one whole group of G completions of the same
 * prompt (with their rewards and correctness). The judge answers, per
 * completion, a score in [0, 1] (NaN = no opinion) and the index of the
 * first wrong step (-1 = none found), and, for the group, a disposition:
 * keep it, drop it, or ask for it to be resampled. This one call expresses
 * SGPO (graded scores), DAPO-style filtering (drop/resample) and judge-free
 * heuristics alike.
 *
 * Since ABI 1.2 the judge may also say where that step is in the completion
 * (a byte span), so that a strategy can credit the tokens before it and
 * after it differently; judges built against 1.0/1.1 keep working and
 * simply never say. Since ABI 1.4 a judge that calls a model may report
 * what the call cost (tokens, from the model API's usage) and what went
 * wrong (per cause), in `report`, also when `assess` fails.
 *
 * On the shipped arithmetic task a group has prompt "12+34+7=", reference
 * "53", reference_steps_json ["12+34=46","46+7=53"] and completions such as
 * "12+34=46;46+7=52;#52" (steps separated by ';', the answer after '#';
 * here the first wrong step is index 1).
 */
#ifndef PRISM_FEEDBACK_H
#define PRISM_FEEDBACK_H

#include "base.h"

PRISM_EXTERN_C_BEGIN
PRISM_ASSUME_NONNULL_BEGIN

#define PRISM_FEEDBACK_V1_ID "prism.feedback/1"

/* Group dispositions. */
#define PRISM_DISPOSITION_KEEP 0     /* train on the group */
#define PRISM_DISPOSITION_DROP 1     /* leave it out of this batch */
#define PRISM_DISPOSITION_RESAMPLE 2 /* replace it with a fresh group */

/* Where a step is in a completion: UTF-8 byte offsets [begin, end). */
typedef struct prism_byte_span {
  int32_t begin;
  int32_t end;
} prism_byte_span;

/* What judging one group cost and what failed (ABI 1.4). Host-owned,
 * zero-filled before each call; the judge adds to it and the host reads it
 * after the call, whether `assess` succeeded or not. */
typedef struct prism_feedback_report {
  uint64_t prompt_tokens;     /* tokens the judge's model read (e.g. an API's usage.prompt_tokens) */
  uint64_t completion_tokens; /* tokens it wrote */
  uint32_t requests;          /* model requests sent, retries included (cache hits excluded) */
  uint32_t retries;           /* of which repeats after a failure */
  uint32_t cache_hits;        /* verdicts answered from a cache, no request */
  uint32_t unparseable;       /* answers whose verdict could not be read */
  uint32_t timeouts;          /* requests past their deadline */
  uint32_t http_errors;       /* answers with an error status or a malformed body */
  uint32_t connection_errors; /* requests that could not connect or lost the connection */
  uint32_t reserved;          /* 0 */
} prism_feedback_report;

/* One group. Host-owned, borrowed for the `assess` call; it may grow at the
 * end (read struct_size before reading later fields). */
typedef struct prism_feedback_group {
  uint32_t struct_size; /* sizeof(prism_feedback_group) as the host knows it */
  uint32_t count;       /* G, the number of completions; may be 0 */
  prism_str prompt;     /* the shared prompt */
  prism_str reference;  /* reference final answer; may be empty */
  /* Reference solution as a JSON array of step strings (e.g.
   * ["12+34=46","46+7=53"]), or empty when the task has none. */
  prism_str reference_steps_json;
  prism_str metadata_json;           /* a JSON object, or empty */
  const prism_str *completions;      /* [count] */
  const double *rewards;             /* [count]; NaN = not applicable */
  const uint8_t *correct;            /* [count]; 1 = correct */
  /* Since ABI 1.2 (check struct_size first): an output, [count] spans
   * pre-filled with {-1, -1} ("not said"). A judge that can locate the first
   * wrong step writes its span in completions[i]: 0 <= begin <= end <=
   * completions[i].len. A step the completion is missing (it stopped early)
   * is the empty span at the end, {len, len}. Leave it {-1, -1} when the
   * step cannot be located or there is no error. */
  prism_byte_span *first_error_spans;
  /* Since ABI 1.4 (check struct_size first): an output the judge may fill,
   * see prism_feedback_report. */
  prism_feedback_report *report;
} prism_feedback_group;

/* Whether a group handed to a judge has `report` (a 1.4 host). */
#define PRISM_FEEDBACK_GROUP_HAS_REPORT(group)                          \
  ((group)->struct_size >= offsetof(prism_feedback_group, report) + \
                               sizeof(prism_feedback_report *))

/* Whether a group handed to a judge has first_error_spans (a 1.2 host). */
#define PRISM_FEEDBACK_GROUP_HAS_SPANS(group)                           \
  ((group)->struct_size >= offsetof(prism_feedback_group, first_error_spans) + \
                               sizeof(prism_byte_span *))

typedef struct prism_feedback_v1 {
  uint32_t struct_size; /* sizeof(prism_feedback_v1) as the plugin knows it */
  uint32_t reserved;    /* 0 */

  /* Judge one group. Outputs are host-owned arrays of group->count elements
   * (not to be touched when count is 0), pre-filled by the host with "no
   * opinion" (NaN, -1); out_disposition is pre-filled with KEEP.
   *   out_score[i]        in [0, 1], or NaN for no opinion (e.g. the
   *                       fraction of steps before the first error, RTS);
   *   out_first_error[i]  0-based index of the first wrong step, -1 if none;
   *   out_disposition     one of PRISM_DISPOSITION_*.
   * A judge may be slow (an LLM behind HTTP): the host measures latency.
   * On failure returns non-zero; the host counts the error and goes on as if
   * the judge had no opinion. [any-thread] */
  prism_status (*assess)(void *PRISM_NULLABLE instance,
                         const prism_feedback_group *group, double *out_score,
                         int32_t *out_first_error, int32_t *out_disposition);
} prism_feedback_v1;

PRISM_STATIC_ASSERT(offsetof(prism_feedback_group, prompt) == 8,
                    "prism_feedback_group.prompt offset");
PRISM_STATIC_ASSERT(offsetof(prism_feedback_group, completions) ==
                        8 + 8 * sizeof(void *),
                    "prism_feedback_group.completions offset");
PRISM_STATIC_ASSERT(offsetof(prism_feedback_group, first_error_spans) ==
                        8 + 11 * sizeof(void *),
                    "prism_feedback_group.first_error_spans offset");
PRISM_STATIC_ASSERT(offsetof(prism_feedback_group, report) ==
                        8 + 12 * sizeof(void *),
                    "prism_feedback_group.report offset");
PRISM_STATIC_ASSERT(sizeof(prism_feedback_group) == 8 + 13 * sizeof(void *),
                    "prism_feedback_group size");
PRISM_STATIC_ASSERT(sizeof(prism_feedback_report) == 48, "prism_feedback_report size");
PRISM_STATIC_ASSERT(sizeof(prism_byte_span) == 8, "prism_byte_span size");
PRISM_STATIC_ASSERT(offsetof(prism_feedback_v1, assess) == 8,
                    "prism_feedback_v1.assess offset");

PRISM_ASSUME_NONNULL_END
PRISM_EXTERN_C_END

#endif /* PRISM_FEEDBACK_H */
