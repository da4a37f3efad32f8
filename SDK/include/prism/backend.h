/*
 * prism/backend.h — interface "prism.backend/1": the policy model.
 *
 * The host never sees the model's internals. It asks the backend to
 * tokenize, to decode incrementally, to compute per-token log-probabilities
 * of given sequences, and to back-propagate from dL/dlogprob (which the host
 * computes: the GRPO surrogate, KL and aggregation live in the host). So any
 * model that can back-propagate from log-probs plugs in: a tabular model, a
 * CPU transformer, or a bridge to a distributed engine.
 *
 * Token sequences are passed as a prism_token_batch: `rows` sequences, each
 * stored in a row of `stride` int32 tokens, of which the first lengths[r]
 * are meaningful (the rest is padding the backend ignores).
 *
 * Log-probabilities use the convention: out[r][t] = log p(tokens[r][t] |
 * tokens[r][0..t-1]) at temperature T (logits divided by T before the
 * softmax) for 1 <= t < lengths[r]; out[r][0] and positions >= lengths[r]
 * are written as 0. `backward` uses the same convention and the same T, so
 * gradients match what was sampled.
 */
#ifndef PRISM_BACKEND_H
#define PRISM_BACKEND_H

#include "base.h"

PRISM_EXTERN_C_BEGIN
PRISM_ASSUME_NONNULL_BEGIN

#define PRISM_BACKEND_V1_ID "prism.backend/1"

/* Which weights to evaluate. */
#define PRISM_MODEL_POLICY 0    /* the trainable policy */
#define PRISM_MODEL_REFERENCE 1 /* the frozen snapshot from snapshot_reference */

/* Facts about the model. Written by the plugin into a host-owned struct
 * whose struct_size the host sets first; the plugin writes only fields
 * covered by both its and the host's struct_size. */
typedef struct prism_backend_info {
  uint32_t struct_size;
  uint32_t vocab_size;  /* number of token ids */
  int32_t bos_token;    /* begin-of-sequence id, or -1 */
  int32_t eos_token;    /* end-of-sequence id, or -1 */
  int32_t pad_token;    /* padding id, or -1 */
  uint32_t max_seq_len; /* longest sequence the model accepts */
  uint64_t parameter_count;
} prism_backend_info;

/* A batch of token sequences. Host-owned, borrowed for the call. */
typedef struct prism_token_batch {
  const int32_t *tokens;   /* [rows][stride] */
  const uint32_t *lengths; /* [rows], each <= stride */
  uint32_t rows;
  uint32_t stride;
} prism_token_batch;

/* AdamW hyper-parameters for one optimizer step. Host-owned, borrowed. */
typedef struct prism_optimizer_step {
  uint32_t struct_size;
  uint32_t reserved;
  double learning_rate;
  double beta1;
  double beta2;
  double epsilon;
  double weight_decay;
  double max_grad_norm; /* clip the global gradient norm; <= 0 = no clip */
} prism_optimizer_step;

/* What an optimizer step reports. Host-owned; struct_size set by host. */
typedef struct prism_optimizer_report {
  uint32_t struct_size;
  uint32_t reserved;
  double grad_norm; /* global gradient norm before clipping */
} prism_optimizer_report;

typedef struct prism_backend_v1 {
  uint32_t struct_size; /* sizeof(prism_backend_v1) as the plugin knows it */
  uint32_t reserved;    /* 0 */

  /* Fill `out` (see prism_backend_info). [any-thread] */
  prism_status (*get_info)(void *PRISM_NULLABLE instance,
                           prism_backend_info *out);

  /* Text -> token ids (no BOS/EOS added). Writes at most `capacity` ids to
   * `out_tokens` (host-owned) and the needed count to *out_count; returns
   * PRISM_E_BUFFER_TOO_SMALL if capacity < *out_count, and
   * PRISM_E_INVALID_ARGUMENT for text outside the vocabulary. [any-thread] */
  prism_status (*tokenize)(void *PRISM_NULLABLE instance, prism_str text,
                           int32_t *PRISM_NULLABLE out_tokens, size_t capacity,
                           size_t *out_count);

  /* Token ids -> UTF-8 text (special tokens omitted). Same capacity rule as
   * tokenize, in bytes; no NUL is written. [any-thread] */
  prism_status (*detokenize)(void *PRISM_NULLABLE instance,
                             const int32_t *PRISM_NULLABLE tokens, size_t count,
                             char *PRISM_NULLABLE out_text, size_t capacity,
                             size_t *out_len);

  /* Start incremental decoding of `prompts` (rows may have different
   * lengths, each >= 1) and write the next-token logits of every row to
   * out_logits [rows][vocab] (host-owned). Replaces any decoding in
   * progress. [any-thread] */
  prism_status (*decode_begin)(void *PRISM_NULLABLE instance,
                               const prism_token_batch *prompts,
                               float *out_logits);

  /* Append tokens[rows] (one per row of the current decoding) and write the
   * next logits [rows][vocab]. Rows the host has finished may receive any
   * valid token; their logits are ignored. Fails with PRISM_E_STATE without
   * decode_begin, or when a row would exceed max_seq_len. [any-thread] */
  prism_status (*decode_step)(void *PRISM_NULLABLE instance,
                              const int32_t *tokens, float *out_logits);

  /* Per-token log-probs of `batch` under `model` (PRISM_MODEL_*) at
   * `temperature` > 0, into out_logprobs [rows][stride] (host-owned), with
   * the convention in the file comment. [any-thread] */
  prism_status (*logprobs)(void *PRISM_NULLABLE instance,
                           const prism_token_batch *batch, int32_t model,
                           float temperature, float *out_logprobs);

  /* Accumulate into the policy's gradient the back-propagation of
   * sum_{r,t} grad[r][t] * logprob[r][t] (the policy's log-probs at
   * `temperature`, same convention). grad is [rows][stride], borrowed;
   * entries at t = 0 or t >= lengths[r] are ignored. [any-thread] */
  prism_status (*backward)(void *PRISM_NULLABLE instance,
                           const prism_token_batch *batch, float temperature,
                           const float *grad_logprobs);

  /* One AdamW step with the accumulated gradient (global-norm clipping
   * first), then zero the gradient. `report` may be NULL. [any-thread] */
  prism_status (*optimizer_step)(void *PRISM_NULLABLE instance,
                                 const prism_optimizer_step *step,
                                 prism_optimizer_report *PRISM_NULLABLE report);

  /* Discard the accumulated gradient. [any-thread] */
  prism_status (*zero_grad)(void *PRISM_NULLABLE instance);

  /* Copy the current policy weights into the frozen reference. [any-thread] */
  prism_status (*snapshot_reference)(void *PRISM_NULLABLE instance);

  /* Save / load the policy, the reference and the optimizer state to / from
   * a file path (UTF-8, borrowed). save must leave no partial file at
   * `path` on failure; load must leave the model unchanged on failure
   * (truncated file, wrong shapes) and explain why in last_error.
   * [any-thread] */
  prism_status (*save)(void *PRISM_NULLABLE instance, prism_str path);
  prism_status (*load)(void *PRISM_NULLABLE instance, prism_str path);

  /* Since ABI 1.3, optional (the host checks struct_size and NULL): the ids
   * the model reads for a task prompt `text`, with the model's own wrapping
   * applied (a chat template, BOS). Same capacity rule as tokenize. When
   * absent the host uses [bos_token] + tokenize(text). [any-thread] */
  prism_status (*PRISM_NULLABLE tokenize_prompt)(
      void *PRISM_NULLABLE instance, prism_str text,
      int32_t *PRISM_NULLABLE out_tokens, size_t capacity, size_t *out_count);

  /* Since ABI 1.5, optional, both or neither (the host checks struct_size
   * and NULL): one forward pass serving both the log-probs and the backward.
   * logprobs_keep writes the policy's log-probs of `batch` at `temperature`
   * exactly as logprobs(batch, PRISM_MODEL_POLICY, temperature) would and
   * keeps what a backward needs (activations, or an autograd graph). Then
   * backward_kept(grad) accumulates what backward(batch, temperature, grad)
   * would for that batch, without running the forward again, and releases
   * the pass. The host calls backward_kept right after logprobs_keep (it
   * computes `grad` from the log-probs in between); any other call, or a
   * second logprobs_keep, may discard the kept pass, and backward_kept
   * without one fails with PRISM_E_STATE. When absent the host calls
   * logprobs then backward. [any-thread] */
  prism_status (*PRISM_NULLABLE logprobs_keep)(void *PRISM_NULLABLE instance,
                                               const prism_token_batch *batch,
                                               float temperature,
                                               float *out_logprobs);
  prism_status (*PRISM_NULLABLE backward_kept)(void *PRISM_NULLABLE instance,
                                               const float *grad_logprobs);

  /* Since ABI 1.6, optional (the host checks struct_size and NULL):
   * decode_step for the rows still going. rows[count] lists rows of the
   * current decoding in strictly increasing order; tokens[count] are their
   * tokens and out_logits [count][vocab] (host-owned) receives their next
   * logits, in the order of `rows`. Every row not listed is finished: it
   * takes no token, the backend need not compute it again, and listing it
   * in a later call fails with PRISM_E_INVALID_ARGUMENT (as does a row out
   * of range or out of order); a later decode_step ignores its token and
   * writes any logits for it. count may be 0 (every row finishes). Fails
   * with PRISM_E_STATE without decode_begin, or when a listed row would
   * exceed max_seq_len. When absent the host calls decode_step, with
   * padding for the finished rows. [any-thread] */
  prism_status (*PRISM_NULLABLE decode_step_rows)(void *PRISM_NULLABLE instance,
                                                  const uint32_t *rows,
                                                  uint32_t count,
                                                  const int32_t *tokens,
                                                  float *out_logits);
} prism_backend_v1;

/* Whether a backend table has tokenize_prompt (a 1.3 plugin that set it). */
#define PRISM_BACKEND_HAS_TOKENIZE_PROMPT(table)                             \
  ((table)->struct_size >= offsetof(prism_backend_v1, tokenize_prompt) +     \
                               sizeof(void *) &&                             \
   (table)->tokenize_prompt != NULL)

/* Whether a backend table has logprobs_keep and backward_kept (a 1.5
 * plugin that set both). */
#define PRISM_BACKEND_HAS_KEPT_PASS(table)                                   \
  ((table)->struct_size >= offsetof(prism_backend_v1, backward_kept) +       \
                               sizeof(void *) &&                             \
   (table)->logprobs_keep != NULL && (table)->backward_kept != NULL)

/* Whether a backend table has decode_step_rows (a 1.6 plugin that set it). */
#define PRISM_BACKEND_HAS_DECODE_STEP_ROWS(table)                            \
  ((table)->struct_size >= offsetof(prism_backend_v1, decode_step_rows) +    \
                               sizeof(void *) &&                             \
   (table)->decode_step_rows != NULL)

PRISM_STATIC_ASSERT(sizeof(prism_backend_info) == 32,
                    "prism_backend_info size");
PRISM_STATIC_ASSERT(offsetof(prism_token_batch, rows) == 2 * sizeof(void *),
                    "prism_token_batch.rows offset");
PRISM_STATIC_ASSERT(sizeof(prism_optimizer_step) == 56,
                    "prism_optimizer_step size");
PRISM_STATIC_ASSERT(sizeof(prism_optimizer_report) == 16,
                    "prism_optimizer_report size");
PRISM_STATIC_ASSERT(offsetof(prism_backend_v1, get_info) == 8,
                    "prism_backend_v1.get_info offset");
PRISM_STATIC_ASSERT(sizeof(prism_backend_v1) == 8 + 16 * sizeof(void *),
                    "prism_backend_v1 size");

PRISM_ASSUME_NONNULL_END
PRISM_EXTERN_C_END

#endif /* PRISM_BACKEND_H */
