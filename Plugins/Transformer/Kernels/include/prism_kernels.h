/*
 * prism_kernels.h — the compute core of the transformer backend plugin.
 *
 * Plain C with runtime dispatch: the matrix kernels have an AVX2+FMA variant
 * (compiled with __attribute__((target))) chosen at run time when the CPU has
 * both, and a portable variant otherwise, so one library runs everywhere and
 * fast where it can. Work is split over a small persistent thread pool.
 *
 * Conventions: row-major float32; "[N][D]" means N rows of D floats.
 */
#ifndef PRISM_KERNELS_H
#define PRISM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- runtime */

/* 1 if the AVX2+FMA kernels are in use on the calling thread. */
int pk_has_avx2_fma(void);
/* 1 if the kernels use their AVX-512 forms on the calling thread (the CPU
 * has AVX-512F and neither pk_force_portable nor pk_force_avx2 is on): the
 * GEMM's micro-kernel, GELU, attention's tiles. They give the AVX2 forms'
 * results bit for bit. */
int pk_has_avx512(void);
/* "AVX-512", "AVX2+FMA" or "portable": the GEMM kernels in use. */
const char *pk_kernels_name(void);
/* Forces the portable GEMM kernels on the calling thread (1 = portable,
 * 0 = the fastest the CPU has); returns the previous setting. A model
 * applies its own choice (pk_model_use_portable) around each call. */
int pk_force_portable(int portable);
/* Keeps the calling thread's kernels on AVX2 on an AVX-512 CPU (1 = AVX2
 * at most, 0 = the fastest); returns the previous setting. For
 * comparisons. */
int pk_force_avx2(int avx2);
/* Sets the number of threads (1..16) used by the kernels; default: the
 * number of online CPUs, capped at 16. */
void pk_set_threads(int threads);
int pk_threads(void);

/* C[M][N] = op(A)[M][K] · op(B)[K][N] + beta · C. op(A) = A, or Aᵀ when
 * trans_a (then A is stored [K][M]); likewise B. lda/ldb/ldc are row strides. */
void pk_gemm(int trans_a, int trans_b, int M, int N, int K, const float *A,
             int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* pk_gemm plus a row vector: C = op(A)·op(B) + beta·C + bias, bias [N]
 * (NULL: none) added in the same pass over C. Each element of C is computed
 * by one thread in a fixed order, so results do not depend on the thread
 * count. */
void pk_gemm_bias(int trans_a, int trans_b, int M, int N, int K,
                  const float *A, int lda, const float *B, int ldb, float beta,
                  float *C, int ldc, const float *bias);
/* A B used for many products (a weight matrix while decoding) packed once:
 * pk_packed_b_floats(K, N) floats at `out` (64-byte aligned is best) take
 * op(B)[K][N] in the GEMM's panel layout, and pk_gemm_packed computes
 * C = op(A)·op(B) + beta·C + bias from them, bit for bit what pk_gemm_bias
 * computes from B. */
size_t pk_packed_b_floats(int K, int N);
void pk_pack_b(int trans_b, int K, int N, const float *B, int ldb, float *out);
void pk_gemm_packed(int trans_a, int M, int N, int K, const float *A, int lda,
                    const float *packed_b, float beta, float *C, int ldc,
                    const float *bias);
/* How many products called on this thread could not get the scratch memory
 * their tasks pack into, so left part of C uncomputed (a count that only
 * grows). The model's passes (pk_logprobs, pk_backward, ...) return -1
 * when one of their products did. */
int pk_gemm_failures(void);
/* Tests only: the kernels' scratch reservations of more than `floats`
 * floats made on the calling thread fail from now on, as when the
 * allocator has nothing left (SIZE_MAX, the default: none); those of the
 * pool's workers, running a product's other tasks, do not, except in the
 * work a pass hands a worker whole (backward's weight gradients), which
 * takes the limit of the thread that handed it. Returns the previous
 * limit. */
size_t pk_test_fail_reservations_above(size_t floats);

/* The measured peak of single-precision FMA, in GFLOP/s, with `threads`
 * threads each running independent FMA chains of the widest vectors the
 * CPU has (AVX-512, else AVX2; portable multiply-adds without FMA) for
 * about `seconds`, whatever kernels are forced: the machine's peak. */
double pk_fma_peak_gflops(int threads, double seconds);

/* ---------------------------------------------------------------- model */

/* Sizes of a decoder-only, pre-LayerNorm transformer. */
typedef struct pk_dims {
  int vocab;   /* V */
  int d_model; /* D */
  int layers;  /* L */
  int heads;   /* H, D % H == 0 */
  int d_ff;    /* F */
  int max_len; /* T_max, positions 0..T_max-1 */
} pk_dims;

/* Offsets (in floats) of every tensor in the one flat parameter array. */
typedef struct pk_layer_offsets {
  size_t ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b;
  size_t ln2_w, ln2_b, fc_w, fc_b, fcp_w, fcp_b;
} pk_layer_offsets;

typedef struct pk_layout {
  size_t wte, wpe, lnf_w, lnf_b, head_w;
  pk_layer_offsets layer[64];
  size_t total;
} pk_layout;

/* The layout for `dims` (layers <= 64). */
pk_layout pk_make_layout(pk_dims dims);

typedef struct pk_model pk_model;

/* A model with its parameters at `params` ([layout.total], owned by the
 * model, initialised by the caller), gradient, AdamW moments and frozen
 * reference copy. NULL on allocation failure. */
pk_model *pk_model_new(pk_dims dims);
void pk_model_free(pk_model *m);
/* Runs this model's passes on the portable kernels (1) or the fastest (0). */
void pk_model_use_portable(pk_model *m, int portable);
/* Whether the training passes (pk_logprobs, pk_logprobs_keep, pk_backward)
 * compute a prefix that sequences of the batch share once (default 1): a
 * GRPO batch holds each prompt G times. The log-probs are the same either
 * way; the gradients differ by the order of their sums. (pk_decode_begin's
 * prefill always shares: its results are the same bit for bit.) */
void pk_model_share_prefixes(pk_model *m, int share);
/* The token rows the last forward pass computed (tokens, less the shared). */
size_t pk_model_rows(const pk_model *m);
/* Ties the LM head to the token embedding (1) or not (0). Tied, head_w is
 * kept equal to wte transposed: set from wte now (policy and reference) and
 * after every AdamW step, its gradient added into wte's by backward. Call it
 * again after writing the parameters (initialisation, loading). */
void pk_model_tie_head(pk_model *m, int tied);
float *pk_params(pk_model *m);
float *pk_reference(pk_model *m);
float *pk_grads(pk_model *m);
float *pk_adam_m(pk_model *m);
float *pk_adam_v(pk_model *m);
int64_t *pk_adam_step(pk_model *m);

/* Per-token log-probs of `tokens` [rows][stride] (lengths[rows]) under the
 * policy (reference = 0) or the reference (1) at `temperature`:
 * out[r][t] = log p(tok[r][t] | tok[r][<t]) for 1 <= t < len, else 0.
 * Returns 0, or -1 on allocation failure / a sequence too long. */
int pk_logprobs(pk_model *m, int reference, const int32_t *tokens,
                const uint32_t *lengths, int rows, int stride,
                float temperature, float *out);

/* Accumulates into the gradient the back-propagation of
 * sum grad[r][t] · logprob[r][t] (policy, same convention). */
int pk_backward(pk_model *m, const int32_t *tokens, const uint32_t *lengths,
                int rows, int stride, float temperature, const float *grad);

/* One forward pass for both: pk_logprobs_keep gives the policy's log-probs
 * (as pk_logprobs with reference = 0) and keeps the pass; pk_backward_kept
 * then accumulates what pk_backward would for that batch, without the
 * forward, and releases it. Any other forward pass (log-probs, decoding,
 * logits), an AdamW step or pk_model_discard_kept discards the kept pass;
 * pk_backward_kept without one returns -2. */
int pk_logprobs_keep(pk_model *m, const int32_t *tokens, const uint32_t *lengths,
                     int rows, int stride, float temperature, float *out);
int pk_backward_kept(pk_model *m, const float *grad);
void pk_model_discard_kept(pk_model *m);

/* Full-sequence logits [rows][stride][V] of the policy (for tests). */
int pk_logits(pk_model *m, const int32_t *tokens, int rows, int stride,
              float *out);

/* Incremental decoding with a KV cache: begin with right-padded prompts
 * (each length >= 1) and get the next-token logits [rows][V]; then append
 * one token per row at a time. */
int pk_decode_begin(pk_model *m, const int32_t *tokens,
                    const uint32_t *lengths, int rows, int stride,
                    float *logits);
int pk_decode_step(pk_model *m, const int32_t *tokens, float *logits);
/* Only some rows: rows[count] strictly increasing, each still going, take
 * tokens[count] and get their logits [count][V]; every row not listed
 * finishes (computed no more; pk_decode_step then writes its logits as 0
 * and ignores its token). Returns 0; -2 without a decoding; -3 when a row
 * would pass max_len; -4 for a row out of range, out of order or finished;
 * -5 for a token outside the vocabulary (pk_decode_step too); -1 when out
 * of memory. */
int pk_decode_step_rows(pk_model *m, const uint32_t *rows, int count,
                        const int32_t *tokens, float *logits);

/* AdamW on the accumulated gradient after clipping its global norm to
 * max_norm (<= 0: no clipping); weight decay only on matrices. Zeroes the
 * gradient. Returns the norm before clipping. */
double pk_adamw(pk_model *m, double lr, double beta1, double beta2,
                double eps, double weight_decay, double max_norm);

#ifdef __cplusplus
}
#endif
#endif
