/*
 * model.c — a decoder-only, pre-LayerNorm transformer (GPT-2 style: learned
 * positions, causal multi-head attention, tanh-GELU MLP, LM head untied or
 * tied to the token embedding):
 * forward, backward from dL/dlogprob, KV-cache decoding and AdamW.
 *
 * Shapes: B rows of T tokens, N = B·T; D model width, H heads of size
 * E = D/H, F MLP width, V vocabulary, L layers. Reference for every formula:
 * the GPT-2 architecture (Radford et al. 2019) as in llm.c's train_gpt2.c.
 */
#include "internal.h"
#include "prism_kernels.h"

#include <math.h>
#include <stdatomic.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
/* The AVX2+FMA forms of the loops below are chosen per call (the caller's
 * pk_has_avx2_fma(), carried into pool tasks in their job). */
#define PK_AVX2 __attribute__((target("avx2,fma")))
/* AVX-512 forms where the GEMMs use AVX-512 (pk_has_avx512()), for loops
 * whose every value is the same operations per lane as in the AVX2 form. */
#define PK_AVX512 __attribute__((target("avx512f")))
#endif

#if defined(__x86_64__)

PK_AVX2 static inline float hsum8(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}
#endif

/* Buffers start on a cache line: with the model's row lengths (multiples
 * of 16 floats) every GEMM row and 16-column panel then starts on one too.
 * malloc's 16-byte alignment split every other 32-byte load across two
 * lines; decoding's GEMMs, which read B in place, were 10% slower so. */
static float *floats_new(size_t count) {
  return aligned_alloc(64, ((count * sizeof(float) + 63) / 64) * 64);
}

static float *floats_zeroed(size_t count) {
  float *p = floats_new(count);
  if (p) memset(p, 0, count * sizeof(float));
  return p;
}

/* ---------------------------------------------------------------- layout */

pk_layout pk_make_layout(pk_dims d) {
  pk_layout lay;
  memset(&lay, 0, sizeof lay);
  size_t at = 0;
#define TAKE(field, count) (lay.field = at, at += (size_t)(count))
  TAKE(wte, d.vocab * d.d_model);
  TAKE(wpe, d.max_len * d.d_model);
  for (int l = 0; l < d.layers && l < 64; ++l) {
    pk_layer_offsets *o = &lay.layer[l];
    size_t D = (size_t)d.d_model, F = (size_t)d.d_ff;
    o->ln1_w = at; at += D;
    o->ln1_b = at; at += D;
    o->qkv_w = at; at += D * 3 * D;
    o->qkv_b = at; at += 3 * D;
    o->proj_w = at; at += D * D;
    o->proj_b = at; at += D;
    o->ln2_w = at; at += D;
    o->ln2_b = at; at += D;
    o->fc_w = at; at += D * F;
    o->fc_b = at; at += F;
    o->fcp_w = at; at += F * D;
    o->fcp_b = at; at += D;
  }
  TAKE(lnf_w, d.d_model);
  TAKE(lnf_b, d.d_model);
  TAKE(head_w, d.d_model * d.vocab);
#undef TAKE
  lay.total = at;
  return lay;
}

/* ----------------------------------------------------------------- model */

typedef struct segment {
  size_t offset, count;
  int decay;
} segment;

/* AdamW's unit of work: a task per chunk, so the gradient norm's sum has
 * the same order at any thread count. */
enum { ADAM_CHUNK = 16384 };

/* A model's weight matrices packed for pk_gemm_packed (pack_weights). */
typedef struct weight_packs {
  float *data;
  size_t cap;
  int transposed; /* each matrix packed as Wᵀ */
  int ready;      /* packed by the pass running (weight_product) */
} weight_packs;

struct pk_model {
  pk_dims d;
  pk_layout lay;
  float *params, *ref, *grads, *adam_m, *adam_v;
  double *adam_partial; /* the squared gradient's sum per ADAM_CHUNK */
  int64_t step;
  segment segments[8 + 12 * 64];
  int segment_count;
  /* Activations of the last forward pass. */
  float *acts;
  size_t acts_cap;
  /* Gradient scratch of backward. */
  float *scratch;
  size_t scratch_cap;
  /* KV cache: [L][rows][max_len][D] each. */
  float *kcache, *vcache;
  size_t cache_cap;
  int *positions;
  int dec_rows;
  /* Which rows of the decoding still take tokens (a row left out of a
   * pk_decode_step_rows call is finished), and the step's going rows and
   * their tokens. */
  unsigned char *dec_going;
  int *dec_index;
  int32_t *dec_tokens;
  /* Work space of decode_step. */
  float *decode_buf;
  size_t decode_cap;
  /* The weights the decoding multiplies by, packed once by decode_begin;
   * a training pass's, packed by its forward (as W) and backward (as Wᵀ)
   * (packed_weight). */
  weight_packs dec_packs, fwd_packs, bwd_packs;
  /* The softmax of each logits row pk_logprobs_keep took, for
   * pk_backward_kept (kept_softmax): its exponentials [rows][V], their sum
   * and whether the row has them. */
  float *soft_exps;
  double *soft_sums;
  unsigned char *soft_set;
  size_t soft_cap;
  /* First token row of each sequence in the activations, then the shared
   * prefixes' arrays: one block of 6 arrays of row_off_cap ints (set_rows). */
  int *row_off;
  size_t row_off_cap;
  int share; /* training passes compute a shared prefix once (default on) */
  size_t last_rows; /* token rows the last forward pass computed */
  int portable; /* kernel choice, applied around each pass */
  int tied;     /* LM head = wte transposed (kept as a synced copy) */
  /* The pass pk_logprobs_keep kept (its activations are `acts`) for
   * pk_backward_kept: the batch it ran on; kept = 0 once anything else ran
   * a forward pass or changed the weights. */
  int kept, kept_rows, kept_stride, kept_share;
  float kept_temperature;
  int32_t *kept_tokens;
  uint32_t *kept_lengths;
  size_t kept_cap;
};

void pk_model_use_portable(pk_model *m, int portable) { m->portable = portable; }
void pk_model_share_prefixes(pk_model *m, int share) { m->share = share; }
size_t pk_model_rows(const pk_model *m) { return m->last_rows; }

static void add_segment(pk_model *m, size_t offset, size_t count, int decay) {
  m->segments[m->segment_count++] = (segment){offset, count, decay};
}

pk_model *pk_model_new(pk_dims d) {
  if (d.layers < 1 || d.layers > 64 || d.heads < 1 || d.d_model % d.heads) return NULL;
  pk_model *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->d = d;
  m->share = 1;
  m->lay = pk_make_layout(d);
  size_t P = m->lay.total;
  m->params = floats_zeroed(P);
  m->ref = floats_zeroed(P);
  m->grads = floats_zeroed(P);
  m->adam_m = floats_zeroed(P);
  m->adam_v = floats_zeroed(P);
  m->adam_partial = malloc((P / ADAM_CHUNK + 1) * sizeof(double));
  if (!m->params || !m->ref || !m->grads || !m->adam_m || !m->adam_v || !m->adam_partial) {
    pk_model_free(m);
    return NULL;
  }
  size_t D = (size_t)d.d_model, F = (size_t)d.d_ff;
  add_segment(m, m->lay.wte, (size_t)d.vocab * D, 1);
  add_segment(m, m->lay.wpe, (size_t)d.max_len * D, 1);
  for (int l = 0; l < d.layers; ++l) {
    const pk_layer_offsets *o = &m->lay.layer[l];
    add_segment(m, o->ln1_w, 2 * D, 0);          /* ln1 w, b */
    add_segment(m, o->qkv_w, 3 * D * D, 1);
    add_segment(m, o->qkv_b, 3 * D, 0);
    add_segment(m, o->proj_w, D * D, 1);
    add_segment(m, o->proj_b, 3 * D, 0);         /* proj b, ln2 w, b */
    add_segment(m, o->fc_w, D * F, 1);
    add_segment(m, o->fc_b, F, 0);
    add_segment(m, o->fcp_w, F * D, 1);
    add_segment(m, o->fcp_b, D, 0);
  }
  add_segment(m, m->lay.lnf_w, 2 * D, 0);
  add_segment(m, m->lay.head_w, D * (size_t)d.vocab, 1);
  return m;
}

void pk_model_free(pk_model *m) {
  if (!m) return;
  free(m->params);
  free(m->ref);
  free(m->grads);
  free(m->adam_m);
  free(m->adam_v);
  free(m->adam_partial);
  free(m->acts);
  free(m->scratch);
  free(m->kcache);
  free(m->vcache);
  free(m->positions);
  free(m->dec_going);
  free(m->dec_index);
  free(m->dec_tokens);
  free(m->kept_tokens);
  free(m->kept_lengths);
  free(m->decode_buf);
  free(m->dec_packs.data);
  free(m->fwd_packs.data);
  free(m->bwd_packs.data);
  free(m->soft_exps);
  free(m->soft_sums);
  free(m->soft_set);
  free(m->row_off);
  free(m);
}

void pk_model_discard_kept(pk_model *m) { m->kept = 0; }

float *pk_params(pk_model *m) { return m->params; }
float *pk_reference(pk_model *m) { return m->ref; }
float *pk_grads(pk_model *m) { return m->grads; }
float *pk_adam_m(pk_model *m) { return m->adam_m; }
float *pk_adam_v(pk_model *m) { return m->adam_v; }
int64_t *pk_adam_step(pk_model *m) { return &m->step; }

/* ------------------------------------------------------------ activations */

typedef struct layer_acts {
  float *x;            /* [N][D] input residual */
  float *ln1, *mu1, *rs1;
  float *qkv;          /* [N][3D] */
  float *att;          /* [B][H][T][T]: a len x len block of probabilities each */
  float *ao;           /* [N][D] attention output (before proj) */
  float *xm;           /* [N][D] residual after attention */
  float *ln2, *mu2, *rs2;
  float *fc;           /* [N][F] before GELU; after a forward pass for
                        * backward, gelu' of it (all the gradient needs) */
  float *ge;           /* [N][F] after GELU */
} layer_acts;

typedef struct acts {
  layer_acts layer[64];
  float *xf;           /* [N][D] final residual */
  float *lnf, *muf, *rsf;
  float *logits;       /* [N][V] */
  /* Only each sequence's own tokens are rows: sequence b is rows
   * off[b] .. off[b+1]-1, N = off[B] rows in all. Padding past a sequence's
   * length is never computed (causal attention: it cannot change the
   * tokens before it), so a batch of ragged completions costs its tokens,
   * not rows x stride. */
  const int *off;
  size_t N;
  /* Shared prefixes. A GRPO batch holds each prompt G times; causal
   * attention makes a prefix's activations the same in every sequence
   * that starts with it, so they are computed once. Sequence b's first
   * skip[b] tokens are those of sequence root[b] (a root: root[b] = b,
   * skip[b] = 0), and its rows are its tokens skip[b] .. len-1 only. A
   * root's sharers follow it in next[] (-1 ends the list); roots[0 ..
   * root_count-1] lists the roots in order. */
  const int *root, *skip, *next, *roots;
  int root_count;
} acts;

/* The fewest tokens a sequence shares with a root (an estimate, not
 * measured: a shorter prefix saves about what gathering the sharer's
 * attention inputs costs). */
enum { SHARE_MIN = 4 };

/* Fills a->off, a->N and the shared prefixes for `B` sequences of
 * `lengths` (NULL: all T); `tokens` [B][T] (NULL: nothing shared). Each
 * sequence shares with the earlier root it has the longest common prefix
 * with, if that is at least SHARE_MIN tokens (the first such root on a tie). */
static int set_rows(pk_model *m, acts *a, int B, int T, const uint32_t *lengths, const int32_t *tokens) {
  if ((size_t)B + 1 > m->row_off_cap) {
    free(m->row_off);
    m->row_off = malloc(6 * ((size_t)B + 1) * sizeof(int));
    m->row_off_cap = m->row_off ? (size_t)B + 1 : 0;
    if (!m->row_off) return -1;
  }
  size_t cap = m->row_off_cap;
  int *off = m->row_off, *root = off + cap, *skip = root + cap, *next = skip + cap, *roots = next + cap;
  int *last = roots + cap; /* each root's last sharer so far */
  int count = 0;
  off[0] = 0;
  for (int b = 0; b < B; ++b) {
    int len = lengths ? (int)lengths[b] : T;
    len = len < 0 ? 0 : len > T ? T : len;
    root[b] = b, skip[b] = 0, next[b] = -1;
    for (int i = 0; tokens && i < count; ++i) {
      int r = roots[i], limit = off[r + 1] - off[r], n = 0; /* a root's rows are its tokens */
      limit = limit < len ? limit : len;
      const int32_t *tr = tokens + (size_t)r * T, *tb = tokens + (size_t)b * T;
      while (n < limit && tr[n] == tb[n]) ++n;
      if (n >= SHARE_MIN && n > skip[b]) root[b] = r, skip[b] = n;
    }
    if (root[b] == b) {
      roots[count++] = b;
    } else {
      next[last[root[b]]] = b;
    }
    last[root[b]] = b;
    off[b + 1] = off[b] + len - skip[b];
  }
  a->off = off;
  a->N = (size_t)off[B];
  a->root = root, a->skip = skip, a->next = next, a->roots = roots, a->root_count = count;
  return 0;
}

/* Carves the activation buffer for B x T tokens and sets the rows of
 * sequences of `lengths` (set_rows; `tokens` NULL: no shared prefixes);
 * -1 on allocation failure. */
static int make_acts(pk_model *m, int B, int T, const uint32_t *lengths, const int32_t *tokens, acts *a) {
  size_t N = (size_t)B * T, D = (size_t)m->d.d_model, F = (size_t)m->d.d_ff;
  size_t H = (size_t)m->d.heads, V = (size_t)m->d.vocab;
  size_t per_layer = N * D * 5 + N * 3 * D + N * 2 * F + 4 * N + (size_t)B * H * T * T;
  size_t need = per_layer * (size_t)m->d.layers + N * (2 * D + V) + 2 * N;
  if (need > m->acts_cap) {
    free(m->acts);
    m->acts = floats_new(need);
    m->acts_cap = m->acts ? need : 0;
    if (!m->acts) return -1;
  }
  float *p = m->acts;
#define CARVE(ptr, n) ((ptr) = p, p += (n))
  for (int l = 0; l < m->d.layers; ++l) {
    layer_acts *la = &a->layer[l];
    CARVE(la->x, N * D);
    CARVE(la->ln1, N * D);
    CARVE(la->mu1, N);
    CARVE(la->rs1, N);
    CARVE(la->qkv, N * 3 * D);
    CARVE(la->att, (size_t)B * H * T * T);
    CARVE(la->ao, N * D);
    CARVE(la->xm, N * D);
    CARVE(la->ln2, N * D);
    CARVE(la->mu2, N);
    CARVE(la->rs2, N);
    CARVE(la->fc, N * F);
    CARVE(la->ge, N * F);
  }
  CARVE(a->xf, N * D);
  CARVE(a->lnf, N * D);
  CARVE(a->muf, N);
  CARVE(a->rsf, N);
  CARVE(a->logits, N * V);
#undef CARVE
  return set_rows(m, a, B, T, lengths, tokens);
}

/* ----------------------------------------------------------- primitives */

PK_MULTIVERSION static void layernorm_portable(const float *x, const float *w, const float *b,
                      float *y, float *mu, float *rs, size_t N, int D) {
  for (size_t n = 0; n < N; ++n) {
    const float *xn = x + n * D;
    float mean = 0, var = 0;
    for (int i = 0; i < D; ++i) mean += xn[i];
    mean /= D;
    for (int i = 0; i < D; ++i) var += (xn[i] - mean) * (xn[i] - mean);
    var /= D;
    float r = 1.0f / sqrtf(var + 1e-5f);
    float *yn = y + n * D;
    for (int i = 0; i < D; ++i) yn[i] = (xn[i] - mean) * r * w[i] + b[i];
    if (mu) mu[n] = mean;
    if (rs) rs[n] = r;
  }
}

#if defined(__x86_64__)

/* The same two-pass LayerNorm on 8 lanes, for D a multiple of 8. */
PK_AVX2 static void layernorm_avx2(const float *x, const float *w, const float *b,
                                                              float *y, float *mu, float *rs, size_t N, int D) {
  for (size_t n = 0; n < N; ++n) {
    const float *xn = x + n * D;
    __m256 s = _mm256_setzero_ps();
    for (int i = 0; i < D; i += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(xn + i));
    float mean = hsum8(s) / D;
    __m256 m = _mm256_set1_ps(mean), v = _mm256_setzero_ps();
    for (int i = 0; i < D; i += 8) {
      __m256 c = _mm256_sub_ps(_mm256_loadu_ps(xn + i), m);
      v = _mm256_fmadd_ps(c, c, v);
    }
    float r = 1.0f / sqrtf(hsum8(v) / D + 1e-5f);
    __m256 rv = _mm256_set1_ps(r);
    float *yn = y + n * D;
    for (int i = 0; i < D; i += 8) {
      __m256 c = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xn + i), m), rv);
      _mm256_storeu_ps(yn + i, _mm256_fmadd_ps(c, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
    }
    if (mu) mu[n] = mean;
    if (rs) rs[n] = r;
  }
}
#endif

/* y = LayerNorm(x) row by row (eps 1e-5), keeping each row's mean and
 * 1/std when mu / rs are given; the kernels `avx2` chooses. */
static void layernorm(const float *x, const float *w, const float *b, float *y, float *mu, float *rs,
                      size_t N, int D, int avx2) {
#if defined(__x86_64__)
  if (avx2 && D % 8 == 0) {
    layernorm_avx2(x, w, b, y, mu, rs, N, D);
    return;
  }
#endif
  (void)avx2;
  layernorm_portable(x, w, b, y, mu, rs, N, D);
}

/* Columns LayerNorm backward's chain (layernorm_backward_chain) keeps in
 * registers at a time (a multiple of 8 lanes). */
#define COLUMN_CHUNK 32

#if defined(__x86_64__)
/* The two row sums of LayerNorm backward for rows n..n+7, one row per lane:
 * eight 8 x 8 blocks transposed in registers, so each lane adds its row's
 * terms first to last with the scalar loop's operations (a multiply, then
 * an add: "avx2" without "fma", so nothing is contracted) and gives its
 * bits. The scalar loop was two chains of D dependent additions per row:
 * latency-bound, 3x LayerNorm forward's time. */
__attribute__((target("avx2"))) static void layernorm_row_sums8(const float *dy, const float *x,
                                                              const float *w, const float *mu,
                                                              const float *rs, int D, float *mean_d,
                                                              float *mean_dx) {
  const __m256 m = _mm256_loadu_ps(mu), s = _mm256_loadu_ps(rs);
  __m256 sd = _mm256_setzero_ps(), sdx = _mm256_setzero_ps();
  for (int i = 0; i < D; i += 8) {
    __m256 yv[8], xv[8];
    for (int r = 0; r < 8; ++r) {
      yv[r] = _mm256_loadu_ps(dy + (size_t)r * D + i);
      xv[r] = _mm256_loadu_ps(x + (size_t)r * D + i);
    }
    transpose8(yv);
    transpose8(xv);
    for (int j = 0; j < 8; ++j) {
      __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(xv[j], m), s);
      __m256 d = _mm256_mul_ps(yv[j], _mm256_set1_ps(w[i + j]));
      sd = _mm256_add_ps(sd, d);
      sdx = _mm256_add_ps(sdx, _mm256_mul_ps(d, xhat));
    }
  }
  const __m256 n = _mm256_set1_ps((float)D);
  _mm256_storeu_ps(mean_d, _mm256_div_ps(sd, n));
  _mm256_storeu_ps(mean_dx, _mm256_div_ps(sdx, n));
}
#endif

/* LayerNorm backward in two parts: dx += ... needs each row's two
 * reductions, dw and db sum each column over all rows. Every sum keeps one
 * order whatever the threads: a column's rows are added first to last, as
 * the serial loop did (layernorm_backward_task). A term of dw is the
 * product dy * xhat rounded, then added (never contracted into an FMA),
 * wherever it is taken.
 *
 * The row part: dx += LayerNorm backward for rows [r0, r1); `avx2` takes
 * their sums eight rows at a time (the same bits). With dw, db, it also
 * adds those rows' terms to the weight's and bias's gradients, row by row
 * (rows r0.. must be the next ones those sums take); with `products`, it
 * stores each row's terms of dw there instead ([n - r0][D]), for
 * layernorm_backward_chain. */
PK_MULTIVERSION static void layernorm_backward_rows(const float *dy, const float *x, const float *w,
                                                    const float *mu, const float *rs, float *dx,
                                                    float *dw, float *db, float *products, size_t r0,
                                                    size_t r1, int D, int avx2) {
  float mean_d[8], mean_dx[8];
  (void)avx2;
  for (size_t n0 = r0; n0 < r1; n0 += 8) {
    size_t rows = r1 - n0 < 8 ? r1 - n0 : 8;
#if defined(__x86_64__)
    if (avx2 && D % 8 == 0 && rows == 8) {
      layernorm_row_sums8(dy + n0 * D, x + n0 * D, w, mu + n0, rs + n0, D, mean_d, mean_dx);
    } else
#endif
    {
      for (size_t r = 0; r < rows; ++r) {
        const float *dyn = dy + (n0 + r) * D, *xn = x + (n0 + r) * D;
        float sd = 0, sdx = 0;
        for (int i = 0; i < D; ++i) {
          float xhat = (xn[i] - mu[n0 + r]) * rs[n0 + r];
          float d = dyn[i] * w[i];
          sd += d;
          sdx += d * xhat;
        }
        mean_d[r] = sd / D;
        mean_dx[r] = sdx / D;
      }
    }
    for (size_t r = 0; r < rows; ++r) {
      size_t n = n0 + r;
      const float *dyn = dy + n * D, *xn = x + n * D;
      float *dxn = dx + n * D;
      if (dw) {
        for (int i = 0; i < D; ++i) {
          float xhat = (xn[i] - mu[n]) * rs[n];
          dxn[i] += rs[n] * (dyn[i] * w[i] - mean_d[r] - xhat * mean_dx[r]);
          float term = dyn[i] * xhat;
          dw[i] += term;
          db[i] += dyn[i];
        }
        continue;
      }
      if (products) {
        float *pn = products + (n - r0) * D;
        for (int i = 0; i < D; ++i) {
          float xhat = (xn[i] - mu[n]) * rs[n];
          dxn[i] += rs[n] * (dyn[i] * w[i] - mean_d[r] - xhat * mean_dx[r]);
          pn[i] = dyn[i] * xhat;
        }
        continue;
      }
      for (int i = 0; i < D; ++i) {
        float xhat = (xn[i] - mu[n]) * rs[n];
        dxn[i] += rs[n] * (dyn[i] * w[i] - mean_d[r] - xhat * mean_dx[r]);
      }
    }
  }
}

/* dw += products, db += dy over `rows` rows in order, COLUMN_CHUNK columns
 * at a time kept in registers across the rows (through dw and db they were
 * a store-to-load chain per row). */
PK_MULTIVERSION static void layernorm_backward_chain(const float *products, const float *dy, float *dw, float *db,
                                                     size_t rows, int D) {
  int c = 0;
  for (; c + COLUMN_CHUNK <= D; c += COLUMN_CHUNK) {
    float sw[COLUMN_CHUNK], sb[COLUMN_CHUNK];
    for (int i = 0; i < COLUMN_CHUNK; ++i) sw[i] = dw[c + i], sb[i] = db[c + i];
    for (size_t n = 0; n < rows; ++n) {
      const float *pn = products + n * D + c, *dyn = dy + n * D + c;
      for (int i = 0; i < COLUMN_CHUNK; ++i) sw[i] += pn[i], sb[i] += dyn[i];
    }
    for (int i = 0; i < COLUMN_CHUNK; ++i) dw[c + i] = sw[i], db[c + i] = sb[i];
  }
  for (size_t n = 0; n < rows; ++n)
    for (int i = c; i < D; ++i) dw[i] += products[n * D + i], db[i] += dy[n * D + i];
}

static _Thread_local pk_scratch lnb_tls; /* a task's terms of dw (layernorm_backward_task) */

typedef struct lnb_job {
  const float *dy, *x, *w, *mu, *rs;
  float *dx, *dw, *db;
  size_t N;
  int D, tasks;
  int avx2;          /* the caller's kernel choice */
  atomic_int summed; /* tasks whose rows dw and db have taken */
} lnb_job;

/* Task i: share i of the rows (contiguous, in order). Task 0 adds its
 * rows' terms to dw and db inside its dx loop; every other task stores its
 * terms of dw while computing dx, then, once the tasks before it have
 * added theirs (tasks start in order, so those are running or done), adds
 * its rows' terms from its own L2. A column's sum so runs over all rows in
 * order. (Each task had summed its share of the columns over every row,
 * reading the other thread's rows of dy and x from the other core and L3:
 * at two threads the five calls of the reference pass took 1.15 ms
 * against 1.24 at one; this way 1.20-1.36 against 1.37-1.51 ms, busy
 * minutes, alternated.) */
static void layernorm_backward_task(void *ctx, int task) {
  lnb_job *j = ctx;
  size_t r0 = j->N * task / j->tasks, r1 = j->N * (task + 1) / j->tasks;
  /* A task whose predecessors have all added theirs (on one thread, every
   * task after the first) adds its terms directly. */
  int behind = task > 0 && atomic_load_explicit(&j->summed, memory_order_acquire) < task;
  float *terms = behind ? pk_reserve(&lnb_tls, (r1 - r0) * (size_t)j->D) : NULL;
  if (!terms) {
    /* Task 0, the tasks before done, or no room for the terms: in order
     * after the tasks before. */
    while (atomic_load_explicit(&j->summed, memory_order_acquire) < task) __builtin_ia32_pause();
    layernorm_backward_rows(j->dy, j->x, j->w, j->mu, j->rs, j->dx, j->dw, j->db, NULL, r0, r1, j->D, j->avx2);
  } else {
    layernorm_backward_rows(j->dy, j->x, j->w, j->mu, j->rs, j->dx, NULL, NULL, terms, r0, r1, j->D, j->avx2);
    while (atomic_load_explicit(&j->summed, memory_order_acquire) < task) __builtin_ia32_pause();
    layernorm_backward_chain(terms, j->dy + r0 * j->D, j->dw, j->db, r1 - r0, j->D);
  }
  atomic_store_explicit(&j->summed, task + 1, memory_order_release);
}

/* dx += LN backward; dw, db accumulate. LNB_TASKS_PER_THREAD tasks a
 * thread, so that a worker busy with a weight gradient in the background
 * (pk_post) when the call begins can still take the later rows. */
#define LNB_TASKS_PER_THREAD 4
static void layernorm_backward(const float *dy, const float *x, const float *w, const float *mu,
                               const float *rs, float *dx, float *dw, float *db, size_t N, int D) {
  int tasks = pk_threads() * LNB_TASKS_PER_THREAD;
  if (tasks > (int)(N / 64)) tasks = (int)(N / 64); /* 64 rows a task at least */
  lnb_job job = {dy, x, w, mu, rs, dx, dw, db, N, D, tasks < 1 ? 1 : tasks, pk_has_avx2_fma(), 0};
  pk_parallel_for(job.tasks, layernorm_backward_task, &job);
}

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */

static void gelu_portable(const float *x, float *y, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + pk_tanhf(GELU_C * (v + 0.044715f * v * v * v)));
  }
}

/* y = gelu(x), and x replaced by gelu'(x): a forward pass that backward
 * follows keeps the slope, all the gradient needs of x, and backward's
 * GELU is then one multiply (it computed tanh again: 0.65 ns an element,
 * against 0.52 for the forward; one thread). */
static void gelu_keep_portable(float *x, float *y, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    float v = x[i];
    float th = pk_tanhf(GELU_C * (v + 0.044715f * v * v * v));
    float dth = (1.0f - th * th) * GELU_C * (1.0f + 3.0f * 0.044715f * v * v);
    y[i] = 0.5f * v * (1.0f + th);
    x[i] = 0.5f * (1.0f + th) + 0.5f * v * dth;
  }
}

#if defined(__x86_64__)
/* The vector forms of e^x, tanh-GELU and GELU's gradient, written once for
 * 8 lanes (AVX2: exp8, gelu_avx2, ...) and 16 (AVX-512: exp16,
 * gelu_avx512, ...): every lane takes the same operations, so the two give
 * the same bits, and elements past the last whole vector go to the next
 * narrower form (TAIL). V is the vector type, P its intrinsics' prefix.
 *
 * e^x: the same method as pk_expf (round to nearest instead of half away
 * from zero: the same accuracy). tanh(c (v + 0.044715 v³)) as
 * 1 - 2 / (e^(2u) + 1). */
#define GELU_UNROLL 4
#define GELU_FORMS(ATTR, V, VI, P, L, SUFFIX, ROUND, CAST, TAIL)                                            \
  ATTR static inline V exp##L(V x) {                                                                         \
    x = P##_min_ps(P##_max_ps(x, P##_set1_ps(-87.0f)), P##_set1_ps(88.0f));                                 \
    V k = ROUND(P##_mul_ps(x, P##_set1_ps(1.44269504f)));                                                    \
    V r = P##_fnmadd_ps(k, P##_set1_ps(0.693145752f), x);                                                    \
    r = P##_fnmadd_ps(k, P##_set1_ps(1.42860677e-6f), r);                                                    \
    V p = P##_set1_ps(1.0f / 720);                                                                           \
    p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f / 120));                                                         \
    p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f / 24));                                                          \
    p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f / 6));                                                           \
    p = P##_fmadd_ps(p, r, P##_set1_ps(0.5f));                                                               \
    p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f));                                                               \
    p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f));                                                               \
    VI scale = P##_slli_epi32(P##_add_epi32(P##_cvtps_epi32(k), P##_set1_epi32(127)), 23);                  \
    return P##_mul_ps(p, CAST(scale));                                                                       \
  }                                                                                                          \
  ATTR static inline V gelu_tanh##L(V v) {                                                                   \
    V u = P##_mul_ps(P##_set1_ps(GELU_C), P##_fmadd_ps(P##_mul_ps(P##_set1_ps(0.044715f), v), P##_mul_ps(v, v), v)); \
    V e = exp##L(P##_add_ps(u, u));                                                                          \
    return P##_sub_ps(P##_set1_ps(1.0f), P##_div_ps(P##_set1_ps(2.0f), P##_add_ps(e, P##_set1_ps(1.0f))));   \
  }                                                                                                          \
  /* gelu(v) and gelu'(v) from t = gelu_tanh##L(v) */                                                    \
  ATTR static inline V gelu_value##L(V v, V t) {                                                             \
    return P##_mul_ps(P##_mul_ps(P##_set1_ps(0.5f), v), P##_add_ps(P##_set1_ps(1.0f), t));                   \
  }                                                                                                          \
  ATTR static inline V gelu_slope##L(V v, V t) {                                                             \
    const V half = P##_set1_ps(0.5f), one = P##_set1_ps(1.0f);                                               \
    V slope = P##_mul_ps(P##_set1_ps(GELU_C), P##_fmadd_ps(P##_set1_ps(3.0f * 0.044715f), P##_mul_ps(v, v), one)); \
    V dth = P##_mul_ps(P##_fnmadd_ps(t, t, one), slope);                                                     \
    return P##_fmadd_ps(P##_mul_ps(half, v), dth, P##_mul_ps(half, P##_add_ps(one, t)));                     \
  }                                                                                                          \
  /* GELU_UNROLL vectors per iteration: their long dependent chains                                          \
   * (e^x, the division) interleave. */                                                                      \
  ATTR static void gelu_##SUFFIX(const float *x, float *y, size_t n) {                                       \
    size_t i = 0;                                                                                            \
    for (; i + GELU_UNROLL * L <= n; i += GELU_UNROLL * L) {                                                 \
      V v[GELU_UNROLL];                                                                                      \
      for (int u = 0; u < GELU_UNROLL; ++u) v[u] = P##_loadu_ps(x + i + u * L);                              \
      for (int u = 0; u < GELU_UNROLL; ++u) v[u] = gelu_value##L(v[u], gelu_tanh##L(v[u]));                  \
      for (int u = 0; u < GELU_UNROLL; ++u) P##_storeu_ps(y + i + u * L, v[u]);                              \
    }                                                                                                        \
    for (; i + L <= n; i += L) {                                                                             \
      V v = P##_loadu_ps(x + i);                                                                             \
      P##_storeu_ps(y + i, gelu_value##L(v, gelu_tanh##L(v)));                                               \
    }                                                                                                        \
    gelu_##TAIL(x + i, y + i, n - i);                                                                        \
  }                                                                                                          \
  /* y = gelu(x), x = gelu'(x) (gelu_keep_portable). */                                                      \
  ATTR static void gelu_keep_##SUFFIX(float *x, float *y, size_t n) {                                        \
    size_t i = 0;                                                                                            \
    for (; i + GELU_UNROLL * L <= n; i += GELU_UNROLL * L) {                                                 \
      V v[GELU_UNROLL], t[GELU_UNROLL];                                                                      \
      for (int u = 0; u < GELU_UNROLL; ++u) v[u] = P##_loadu_ps(x + i + u * L);                              \
      for (int u = 0; u < GELU_UNROLL; ++u) t[u] = gelu_tanh##L(v[u]);                                       \
      for (int u = 0; u < GELU_UNROLL; ++u) P##_storeu_ps(y + i + u * L, gelu_value##L(v[u], t[u]));         \
      for (int u = 0; u < GELU_UNROLL; ++u) P##_storeu_ps(x + i + u * L, gelu_slope##L(v[u], t[u]));         \
    }                                                                                                        \
    for (; i + L <= n; i += L) {                                                                             \
      V v = P##_loadu_ps(x + i), t = gelu_tanh##L(v);                                                        \
      P##_storeu_ps(y + i, gelu_value##L(v, t));                                                             \
      P##_storeu_ps(x + i, gelu_slope##L(v, t));                                                             \
    }                                                                                                        \
    gelu_keep_##TAIL(x + i, y + i, n - i);                                                                   \
  }
#define ROUND8(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define ROUND16(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
GELU_FORMS(PK_AVX2, __m256, __m256i, _mm256, 8, avx2, ROUND8, _mm256_castsi256_ps, portable)
/* On 16 lanes when the GEMMs use AVX-512: GELU and its gradient were 6%
 * of a training pass on 8 lanes. */
GELU_FORMS(PK_AVX512, __m512, __m512i, _mm512, 16, avx512, ROUND16, _mm512_castsi512_ps, avx2)
#undef ROUND8
#undef ROUND16
#undef GELU_FORMS
#endif

/* y = gelu(x) (tanh form) with the kernels `level` chooses (pk_kernel_level). */
static void gelu(const float *x, float *y, size_t n, int level) {
#if defined(__x86_64__)
  if (level > 1) {
    gelu_avx512(x, y, n);
    return;
  }
  if (level) {
    gelu_avx2(x, y, n);
    return;
  }
#endif
  (void)level;
  gelu_portable(x, y, n);
}

static void gelu_keep(float *x, float *y, size_t n, int level) {
#if defined(__x86_64__)
  if (level > 1) {
    gelu_keep_avx512(x, y, n);
    return;
  }
  if (level) {
    gelu_keep_avx2(x, y, n);
    return;
  }
#endif
  (void)level;
  gelu_keep_portable(x, y, n);
}

/* Row-chunked parallel versions of the element-wise passes. */
typedef struct rows_job {
  const float *x, *w, *b;
  float *y, *mu, *rs;
  size_t N;
  int D;
  int chunk;
  int avx2; /* the caller's kernel choice (pk_kernel_level for GELU) */
  float *gx; /* GELU's x (gelu_run) */
  int mode;
} rows_job;

static void layernorm_chunk(void *ctx, int task) {
  rows_job *j = ctx;
  size_t begin = (size_t)task * j->chunk, end = begin + j->chunk < j->N ? begin + j->chunk : j->N;
  layernorm(j->x + begin * j->D, j->w, j->b, j->y + begin * j->D, j->mu ? j->mu + begin : NULL,
            j->rs ? j->rs + begin : NULL, end - begin, j->D, j->avx2);
}

static void parallel_layernorm(const float *x, const float *w, const float *b, float *y, float *mu,
                               float *rs, size_t N, int D) {
  rows_job job = {.x = x, .w = w, .b = b, .y = y, .mu = mu, .rs = rs, .N = N, .D = D, .avx2 = pk_has_avx2_fma()};
  job.chunk = (int)((N + 7) / 8);
  if (N < 256) {
    layernorm(x, w, b, y, mu, rs, N, D, job.avx2);
    return;
  }
  pk_parallel_ranges((int)((N + job.chunk - 1) / job.chunk), layernorm_chunk, &job);
}

/* The two GELU passes over elements: y = gelu(x) (GELU_VALUE), or that
 * and x = gelu'(x) (GELU_KEEP, gelu_keep). Backward multiplies by those
 * slopes as its product stores dfc (weight_product_times). */
enum { GELU_VALUE, GELU_KEEP };

static void gelu_run(float *x, float *y, size_t n, int mode, int level) {
  if (mode == GELU_KEEP) gelu_keep(x, y, n, level);
  else gelu(x, y, n, level);
}

static void gelu_chunk(void *ctx, int task) {
  rows_job *j = ctx;
  size_t begin = (size_t)task * j->chunk, end = begin + j->chunk < j->N ? begin + j->chunk : j->N;
  gelu_run(j->gx + begin, j->y + begin, end - begin, j->mode, j->avx2);
}

/* A GELU pass over n elements on the pool. */
static void parallel_gelu(float *x, float *y, size_t n, int mode) {
  int level = pk_kernel_level();
  rows_job job = {.gx = x, .y = y, .N = n, .chunk = (int)((n + 7) / 8), .avx2 = level, .mode = mode};
  if (n < 16384) {
    gelu_run(x, y, n, mode, level);
    return;
  }
  pk_parallel_ranges((int)((n + job.chunk - 1) / job.chunk), gelu_chunk, &job);
}

/* Elements [a, b) of the GELU_VALUE pass parallel_gelu would make over
 * `total` elements (x and y point at element a), each through the form
 * that pass gives it: a chunk's last (length mod 8) elements through the
 * portable form, the others through the 16- or 8-lane forms (the same
 * bits); the vector elements at the end of [a, b) that fill no 8 go
 * through a copy of 8. One part of a decoding step's rows then gets the
 * bits the whole step would (decode_rows_pass). */
static void gelu_part(const float *x, float *y, size_t a, size_t b, size_t total, int level) {
  size_t chunk = total < 16384 ? total : (total + 7) / 8;
  for (size_t c0 = a / chunk * chunk; c0 < b; c0 += chunk) {
    size_t c1 = c0 + chunk < total ? c0 + chunk : total, tail = c1 - (c1 - c0) % 8;
    size_t s = a > c0 ? a : c0, e = b < tail ? b : tail;
    if (s < e) {
      size_t whole = (e - s) / 8 * 8, rest = e - s - whole;
      gelu(x + (s - a), y + (s - a), whole, level);
      if (rest) {
        float in[8] = {0}, out[8];
        memcpy(in, x + (s - a) + whole, rest * sizeof(float));
        gelu(in, out, 8, level);
        memcpy(y + (s - a) + whole, out, rest * sizeof(float));
      }
    }
    s = a > tail ? a : tail, e = b < c1 ? b : c1;
    if (s < e) gelu(x + (s - a), y + (s - a), e - s, level); /* fewer than 8: the portable form */
  }
}

/* dst = src (or 0 when src is NULL) for n floats, in chunks on the pool:
 * the training passes' residual copies and gradient clears (1-3 MB at the
 * reference batch) ran on the calling thread with the worker idle. */
typedef struct copy_job {
  const float *src;
  float *dst;
  size_t n, chunk;
} copy_job;

static void copy_chunk(void *ctx, int task) {
  const copy_job *j = ctx;
  size_t begin = (size_t)task * j->chunk, count = j->n - begin < j->chunk ? j->n - begin : j->chunk;
  if (j->src) memcpy(j->dst + begin, j->src + begin, count * sizeof(float));
  else memset(j->dst + begin, 0, count * sizeof(float));
}

static void parallel_copy(float *dst, const float *src, size_t n) {
  copy_job job = {src, dst, n, 16384};
  if (n <= job.chunk) {
    copy_chunk(&job, 0);
    return;
  }
  pk_parallel_ranges((int)((n + job.chunk - 1) / job.chunk), copy_chunk, &job);
}

/* ------------------------------------------------------------- attention */

typedef struct att_job {
  const float *qkv;
  float *att, *ao;
  float *dqkv;
  const float *dao;
  int T, H, D;  /* T: the batch's stride (the probabilities' block size) */
  int avx2; /* the caller's pk_kernel_level() */
  /* Sequence b's own tokens are rows off[b] .. off[b+1]-1; its first
   * skip[b] tokens are its root's (see acts). */
  const int *off, *root, *skip, *next, *roots;
  int failed; /* a task could not get its scratch */
} att_job;

/* One sequence and head as the attention kernels see it: T tokens whose q
 * rows are at q (stride ld), k at q + kv, v at q + 2 kv; the gradients
 * (backward) in the same layout at dq. P: its probabilities transposed,
 * P[s * T + t] = p(query t attends to key s), zero for s > t. The
 * output (forward) rows at o, stride ol; the output's gradient (backward)
 * at dout, stride dl. */
typedef struct att_seq {
  const float *q;
  float *dq;
  long ld, kv;
  float *P;
  int T, E;
  float *o;
  long ol;
  const float *dout;
  long dl;
} att_seq;

#if defined(__x86_64__)
/* Vector forms of the attention loops for head sizes that are multiples of
 * 8: dot products as 8-lane FMAs (the scalar ones are a chain of dependent
 * adds), the softmax with exp8. */

PK_AVX2 static inline float dot8(const float *a, const float *b, int n) {
  __m256 acc0 = _mm256_mul_ps(_mm256_loadu_ps(a), _mm256_loadu_ps(b));
  __m256 acc1 = _mm256_setzero_ps();
  int e = 8;
  for (; e + 16 <= n; e += 16) {
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + e), _mm256_loadu_ps(b + e), acc1);
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + e + 8), _mm256_loadu_ps(b + e + 8), acc0);
  }
  if (e < n) acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + e), _mm256_loadu_ps(b + e), acc1);
  return hsum8(_mm256_add_ps(acc0, acc1));
}

/* p[0:n] = exp(p - max p); returns the sum. */
PK_AVX2 static float softmax_unnormalised8(float *p, int n) {
  float maxv = -INFINITY;
  for (int s = 0; s < n; ++s) maxv = p[s] > maxv ? p[s] : maxv;
  __m256 m = _mm256_set1_ps(maxv), sum = _mm256_setzero_ps();
  int s = 0;
  for (; s + 8 <= n; s += 8) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p + s), m));
    _mm256_storeu_ps(p + s, e);
    sum = _mm256_add_ps(sum, e);
  }
  float total = hsum8(sum);
  for (; s < n; ++s) {
    p[s] = pk_expf(p[s] - maxv);
    total += p[s];
  }
  return total;
}

/* Tiled attention: one (b, h) as small matrix products through a 4-row x
 * 16-column register tile (8 accumulators; a k step is 2 loads, 4
 * broadcasts, 8 FMAs), so nothing sums through memory and no dot product
 * ends in a horizontal add (a row-at-a-time form accumulated the output
 * with a load-FMA-store per key, a chain through the store buffer).
 * The scores are computed transposed (a row per key, a column per query;
 * see att_softmax_cols), from Q (forward) or dO (backward) transposed into
 * a per-thread scratch; the other products read a transposed operand by
 * rows or columns. Causal blocks above the diagonal are skipped. */

static _Thread_local pk_scratch att_tls;      /* the tiled kernels' */
static _Thread_local pk_scratch view_tls;     /* a sharer's gathered rows */
static _Thread_local pk_scratch att_out_tls;  /* its outputs or gradients */

/* C[r][0:L*NV] (+)= sum over k in [k0, k1) of x(r, k) · y[k*ys + 0:L*NV]
 * for the `rows` (1..4) rows, x(r, k) = x[r*xs + k*xk] (xk = 1: rows of x;
 * xs = 1: columns of x, a product with xᵀ needing no transposed copy);
 * `add`: C += tile, else C = tile. Written once for L = 8 lanes (AVX2) and
 * 16 (AVX-512, used when the GEMMs use it): each element is the same FMA
 * chain over k from zero, then the same add, so the same bits. */
#define ATT_TILE(NAME, ATTR, V, P, L, NV)                                                           \
  ATTR static inline void NAME(const float *x, long xs, long xk, int rows, const float *y,         \
                               long ys, int k0, int k1, float *c, long cs, int add) {             \
    const float *x0 = x + (size_t)k0 * xk, *x1 = x0 + (rows > 1 ? xs : 0);                         \
    const float *x2 = x0 + (rows > 2 ? 2 * xs : 0), *x3 = x0 + (rows > 3 ? 3 * xs : 0);            \
    const float *yk = y + (size_t)k0 * ys;                                                         \
    V acc[4][NV];                                                                                  \
    for (int r = 0; r < 4; ++r)                                                                    \
      for (int v = 0; v < NV; ++v) acc[r][v] = P##_setzero_ps();                                   \
    for (int k = k0; k < k1; ++k) {                                                                \
      V yv[NV];                                                                                    \
      for (int v = 0; v < NV; ++v) yv[v] = P##_loadu_ps(yk + L * v);                               \
      V b0 = P##_set1_ps(*x0), b1 = P##_set1_ps(*x1), b2 = P##_set1_ps(*x2), b3 = P##_set1_ps(*x3); \
      for (int v = 0; v < NV; ++v) {                                                               \
        acc[0][v] = P##_fmadd_ps(b0, yv[v], acc[0][v]);                                            \
        acc[1][v] = P##_fmadd_ps(b1, yv[v], acc[1][v]);                                            \
        acc[2][v] = P##_fmadd_ps(b2, yv[v], acc[2][v]);                                            \
        acc[3][v] = P##_fmadd_ps(b3, yv[v], acc[3][v]);                                            \
      }                                                                                            \
      x0 += xk, x1 += xk, x2 += xk, x3 += xk, yk += ys;                                            \
    }                                                                                              \
    for (int r = 0; r < rows; ++r) {                                                               \
      float *row = c + (size_t)r * cs;                                                             \
      for (int v = 0; v < NV; ++v) {                                                               \
        V out = acc[r][v];                                                                         \
        if (add) out = P##_add_ps(P##_loadu_ps(row + L * v), out);                                 \
        P##_storeu_ps(row + L * v, out);                                                           \
      }                                                                                            \
    }                                                                                              \
  }
ATT_TILE(att_tile16, PK_AVX2, __m256, _mm256, 8, 2)
ATT_TILE(att_tile8, PK_AVX2, __m256, _mm256, 8, 1)
ATT_TILE(att_tile32_avx512, PK_AVX512, __m512, _mm512, 16, 2)
ATT_TILE(att_tile16_avx512, PK_AVX512, __m512, _mm512, 16, 1)
#undef ATT_TILE

/* C[T][W] (+)= X · Y, X(t, k) = x[t*xs + k*xk], Y rows at stride ys with W
 * (a multiple of 8) columns contiguous, C rows at stride cs. causal_rows:
 * row t needs k <= t (P·V, dS·K); causal_cols: row s needs k >= s (Pᵀ·dO,
 * dSᵀ·Q); else the whole [0, K). */
PK_AVX2 static void att_product(int T, int W, const float *x, long xs, long xk, const float *y, long ys,
                                float *c, long cs, int add, int causal_rows, int causal_cols, int K, int wide) {
  for (int t0 = 0; t0 < T; t0 += 4) {
    int rows = T - t0 < 4 ? T - t0 : 4;
    int k0 = causal_cols ? t0 : 0;
    int k1 = causal_rows ? (t0 + rows < K ? t0 + rows : K) : K;
    const float *xt = x + (size_t)t0 * xs;
    int w = 0;
    if (wide)
      for (; w + 32 <= W; w += 32) att_tile32_avx512(xt, xs, xk, rows, y + w, ys, k0, k1, c + (size_t)t0 * cs + w, cs, add);
    for (; w + 16 <= W; w += 16) {
      if (wide) att_tile16_avx512(xt, xs, xk, rows, y + w, ys, k0, k1, c + (size_t)t0 * cs + w, cs, add);
      else att_tile16(xt, xs, xk, rows, y + w, ys, k0, k1, c + (size_t)t0 * cs + w, cs, add);
    }
    if (w < W) att_tile8(xt, xs, xk, rows, y + w, ys, k0, k1, c + (size_t)t0 * cs + w, cs, add);
  }
}

/* out[e][0:Tp] = in[t][e] for t < T (row stride ins), zero for t >= T; E
 * a multiple of 8. Whole 8 x 8 blocks go through registers (transpose8;
 * a 32 x 32 head element by element 0.19 us, so 0.15, in L1). */
PK_AVX2 static void att_transpose(int T, int Tp, int E, const float *in, long ins, float *out) {
  int t0 = 0;
  for (; t0 + 8 <= T; t0 += 8) {
    for (int e0 = 0; e0 < E; e0 += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(in + (size_t)(t0 + i) * ins + e0);
      transpose8(r);
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + (size_t)(e0 + i) * Tp + t0, r[i]);
    }
  }
  for (int e = 0; e < E; ++e) {
    float *row = out + (size_t)e * Tp;
    for (int t = t0; t < T; ++t) row[t] = in[(size_t)t * ins + e];
    for (int t = T; t < Tp; ++t) row[t] = 0;
  }
}

/* Transposed scores Sᵀ[s][0:Tp] = Y[s] · Xᵀ, from xT [E][Tp] (X
 * transposed, zero-padded to Tp): for row s only the 16-column blocks from
 * the one holding s on (a causal column t needs s <= t). Each element is
 * the FMA chain over e of the untransposed product: fma(y, x, acc) and
 * fma(x, y, acc) are the same. */
PK_AVX2 static void att_scores_t(int T, int Tp, int E, const float *y, long ys, const float *xT, float *St,
                                 int wide) {
  for (int s0 = 0; s0 < T; s0 += 4) {
    int rows = T - s0 < 4 ? T - s0 : 4;
    for (int t0 = s0 / 16 * 16; t0 < T; t0 += 16) {
      if (wide && t0 + 32 <= Tp) {
        att_tile32_avx512(y + (size_t)s0 * ys, ys, 1, rows, xT + t0, Tp, 0, E, St + (size_t)s0 * Tp + t0, Tp, 0);
        t0 += 16;
        continue;
      }
      if (wide) att_tile16_avx512(y + (size_t)s0 * ys, ys, 1, rows, xT + t0, Tp, 0, E, St + (size_t)s0 * Tp + t0, Tp, 0);
      else att_tile16(y + (size_t)s0 * ys, ys, 1, rows, xT + t0, Tp, 0, E, St + (size_t)s0 * Tp + t0, Tp, 0);
    }
  }
}

/* The softmax and its gradient run on the transposed scores, L columns
 * (queries t) at a time, a lane per query: no horizontal maximum or sum,
 * and no chain of them per row (a row at a time, with 8-lane vectors along
 * s, the softmax was 40% of a (sequence, head)'s forward). The bits are
 * the row form's: that form summed a row in 8 lanes (lane l the terms
 * s = l mod 8, in order) and then added the lanes as hsum8 does, and each
 * lane here keeps those 8 partial sums and adds them in that order; terms
 * past t are +0 in both. Written for 8 lanes (AVX2) and 16 (AVX-512).
 *
 * att_le(s, t): the lanes whose query t has s <= t; att_sel(m, a, b): a
 * in them, b elsewhere; att_keep(m, a): a in them, +0 elsewhere;
 * att_load/att_store: the first `left` lanes (the others read +0). */
PK_AVX2 static inline __m256 att_iota8(int t0) {
  return _mm256_add_ps(_mm256_set1_ps((float)t0), _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7));
}
PK_AVX2 static inline __m256 att_le8(float s, __m256 t) { return _mm256_cmp_ps(_mm256_set1_ps(s), t, _CMP_LE_OQ); }
PK_AVX2 static inline __m256 att_sel8(__m256 m, __m256 a, __m256 b) { return _mm256_blendv_ps(b, a, m); }
PK_AVX2 static inline __m256 att_keep8(__m256 m, __m256 a) { return _mm256_and_ps(a, m); }
PK_AVX2 static inline __m256i att_first8(int left) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
PK_AVX2 static inline __m256 att_load8(const float *p, int left) {
  return left >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, att_first8(left));
}
PK_AVX2 static inline void att_store8(float *p, int left, __m256 v) {
  if (left >= 8) _mm256_storeu_ps(p, v);
  else _mm256_maskstore_ps(p, att_first8(left), v);
}
PK_AVX512 static inline __m512 att_iota16(int t0) {
  return _mm512_add_ps(_mm512_set1_ps((float)t0),
                       _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}
PK_AVX512 static inline __mmask16 att_le16(float s, __m512 t) {
  return _mm512_cmp_ps_mask(_mm512_set1_ps(s), t, _CMP_LE_OQ);
}
PK_AVX512 static inline __m512 att_sel16(__mmask16 m, __m512 a, __m512 b) { return _mm512_mask_blend_ps(m, b, a); }
PK_AVX512 static inline __m512 att_keep16(__mmask16 m, __m512 a) { return _mm512_maskz_mov_ps(m, a); }
PK_AVX512 static inline __m512 att_load16(const float *p, int left) {
  return left >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps((__mmask16)((1u << left) - 1), p);
}
PK_AVX512 static inline void att_store16(float *p, int left, __m512 v) {
  if (left >= 16) _mm512_storeu_ps(p, v);
  else _mm512_mask_storeu_ps(p, (__mmask16)((1u << left) - 1), v);
}

/* hsum8's order over 8 partial sums, lane by lane. */
#define ATT_TREE(P, part)                                                                         \
  P##_add_ps(P##_add_ps(P##_add_ps(part[0], part[4]), P##_add_ps(part[2], part[6])),              \
             P##_add_ps(P##_add_ps(part[1], part[5]), P##_add_ps(part[3], part[7])))
#define ATT_COLUMNS(ATTR, V, M, P, L)                                                             \
  /* Queries t0 .. t0+L-1: St's columns (scores, Tp floats a row) become                         \
   * the probabilities Pᵀ[s][t] (T floats a row; zero for s > t). */                             \
  ATTR static void att_softmax_cols##L(float *St, int Tp, int t0, int T, float scale, float *Pt) { \
    const V t = att_iota##L(t0), sc = P##_set1_ps(scale), neg = P##_set1_ps(-INFINITY);          \
    int end = T < t0 + L ? T : t0 + L, left = T - t0 < L ? T - t0 : L;                           \
    V mx = neg, part[8];                                                                          \
    for (int s = 0; s < end; ++s) {                                                               \
      float *row = St + (size_t)s * Tp + t0;                                                      \
      V x = att_sel##L(att_le##L((float)s, t), P##_mul_ps(P##_loadu_ps(row), sc), neg);          \
      P##_storeu_ps(row, x);                                                                      \
      mx = P##_max_ps(mx, x);                                                                     \
    }                                                                                             \
    for (int l = 0; l < 8; ++l) part[l] = P##_setzero_ps();                                       \
    for (int s = 0; s < end; ++s) {                                                               \
      float *row = St + (size_t)s * Tp + t0;                                                      \
      V e = att_keep##L(att_le##L((float)s, t), exp##L(P##_sub_ps(P##_loadu_ps(row), mx)));      \
      P##_storeu_ps(row, e);                                                                      \
      part[s & 7] = P##_add_ps(part[s & 7], e);                                                   \
    }                                                                                             \
    V inv = P##_div_ps(P##_set1_ps(1.0f), ATT_TREE(P, part));                                     \
    for (int s = 0; s < end; ++s)                                                                 \
      att_store##L(Pt + (size_t)s * T + t0, left, P##_mul_ps(P##_loadu_ps(St + (size_t)s * Tp + t0), inv)); \
    for (int s = end; s < T; ++s) att_store##L(Pt + (size_t)s * T + t0, left, P##_setzero_ps());   \
  }                                                                                               \
  /* dSᵀ = Pᵀ ⊙ (dPᵀ − Σ_s P ⊙ dP) · scale for queries t0 .. t0+L-1, in                          \
   * place on dPᵀ (Tp floats a row). The row form computed its 8-lane                             \
   * vectors up to t's (s/8 <= t/8, +-0 past t) and stored +0 beyond. */                        \
  ATTR static void att_dscores_cols##L(float *dSt, int Tp, int t0, int T, float scale, const float *Pt) { \
    const V t = att_iota##L(t0), sc = P##_set1_ps(scale);                                        \
    int end = T < t0 + L ? T : t0 + L, left = T - t0 < L ? T - t0 : L;                           \
    V part[8];                                                                                    \
    for (int l = 0; l < 8; ++l) part[l] = P##_setzero_ps();                                       \
    for (int s = 0; s < end; ++s) {                                                               \
      float *row = dSt + (size_t)s * Tp + t0;                                                     \
      M below = att_le##L((float)s, t);                                                           \
      V pv = att_keep##L(below, att_load##L(Pt + (size_t)s * T + t0, left));                      \
      V dv = att_keep##L(below, P##_loadu_ps(row));                                               \
      P##_storeu_ps(row, dv);                                                                     \
      part[s & 7] = P##_fmadd_ps(pv, dv, part[s & 7]);                                            \
    }                                                                                             \
    V d = ATT_TREE(P, part);                                                                      \
    for (int s = 0; s < end; ++s) {                                                               \
      float *row = dSt + (size_t)s * Tp + t0;                                                     \
      V pv = att_keep##L(att_le##L((float)s, t), att_load##L(Pt + (size_t)s * T + t0, left));     \
      V ds = P##_mul_ps(P##_mul_ps(pv, P##_sub_ps(P##_loadu_ps(row), d)), sc);                    \
      P##_storeu_ps(row, att_keep##L(att_le##L((float)(s & ~7), t), ds)); /* s/8 <= t/8 */        \
    }                                                                                             \
    for (int s = end; s < T; ++s) P##_storeu_ps(dSt + (size_t)s * Tp + t0, P##_setzero_ps());     \
  }
ATT_COLUMNS(PK_AVX2, __m256, __m256, _mm256, 8)
ATT_COLUMNS(PK_AVX512, __m512, __mmask16, _mm512, 16)
#undef ATT_COLUMNS
#undef ATT_TREE

/* Requests every line of rows row0 .. row0+T-1, `width` floats from `at`
 * (row stride ld), before the task touches them: the activations come cold
 * from the GEMM before, and issued together the misses overlap instead of
 * arriving one strided row at a time. */
static void att_prefetch(const float *at, long ld, int T, int width) {
  for (int t = 0; t < T; ++t)
    for (int e = 0; e < width; e += 16) _mm_prefetch((const char *)(at + (size_t)t * ld + e), _MM_HINT_T0);
}

/* Returns 0 when the scratch could not be had (the caller then runs the
 * portable loops). The probabilities are kept transposed, Pᵀ[s][t]. */
PK_AVX2 __attribute__((noinline)) static int attention_tiled_avx2(const att_seq *q, int wide) {
  int T = q->T, E = q->E;
  if (T == 0) return 1;
  int Tp = (T + 15) / 16 * 16;
  float *qT = pk_reserve(&att_tls, (size_t)E * Tp + (size_t)T * Tp);
  if (!qT) return 0;
  float *St = qT + (size_t)E * Tp;
  float scale = 1.0f / sqrtf((float)E);
  const float *base = q->q;
  long ld = q->ld;
  for (int part = 0; part < 3; ++part) att_prefetch(base + part * q->kv, ld, T, E);
  att_transpose(T, Tp, E, base, ld, qT);
  att_scores_t(T, Tp, E, base + q->kv, ld, qT, St, wide);
  if (wide)
    for (int t0 = 0; t0 < T; t0 += 16) att_softmax_cols16(St, Tp, t0, T, scale, q->P);
  else
    for (int t0 = 0; t0 < T; t0 += 8) att_softmax_cols8(St, Tp, t0, T, scale, q->P);
  att_product(T, E, q->P, 1, T, base + 2 * q->kv, ld, q->o, q->ol, 0, 1, 0, T, wide);
  return 1;
}

PK_AVX2 __attribute__((noinline)) static int attention_backward_tiled_avx2(const att_seq *q, int wide) {
  int T = q->T, E = q->E;
  if (T == 0) return 1;
  int Tp = (T + 15) / 16 * 16;
  float *doT = pk_reserve(&att_tls, (size_t)E * Tp + (size_t)T * Tp);
  if (!doT) return 0;
  float *dSt = doT + (size_t)E * Tp;
  float scale = 1.0f / sqrtf((float)E);
  const float *base = q->q, *dout = q->dout, *Pt = q->P;
  float *dbase = q->dq;
  long ld = q->ld, kv = q->kv;
  for (int part = 0; part < 3; ++part) {
    att_prefetch(base + part * kv, ld, T, E);
    att_prefetch(dbase + part * kv, ld, T, E);
  }
  att_prefetch(dout, q->dl, T, E);
  /* dPᵀ = V · dOᵀ, then dSᵀ = Pᵀ ⊙ (dPᵀ − Σ_s P ⊙ dP) · scale. */
  att_transpose(T, Tp, E, dout, q->dl, doT);
  att_scores_t(T, Tp, E, base + 2 * kv, ld, doT, dSt, wide);
  if (wide)
    for (int t0 = 0; t0 < T; t0 += 16) att_dscores_cols16(dSt, Tp, t0, T, scale, Pt);
  else
    for (int t0 = 0; t0 < T; t0 += 8) att_dscores_cols8(dSt, Tp, t0, T, scale, Pt);
  /* dQ = dS · K; dK = dSᵀ · Q; dV = Pᵀ · dO (each transposed operand
   * read by rows or columns as the product needs, no copies). */
  att_product(T, E, dSt, 1, Tp, base + kv, ld, dbase, ld, 0, 1, 0, T, wide);
  att_product(T, E, dSt, Tp, 1, base, ld, dbase + kv, ld, 0, 0, 1, T, wide);
  att_product(T, E, Pt, T, 1, dout, q->dl, dbase + 2 * kv, ld, 0, 0, 1, T, wide);
  return 1;
}
#endif

/* Causal softmax(q kᵀ / sqrt(E)) v for one sequence and head. */
PK_MULTIVERSION static void attention_seq(const att_seq *q, int avx2) {
#if defined(__x86_64__)
  if (avx2 && q->E % 8 == 0 && attention_tiled_avx2(q, avx2 > 1)) return;
#endif
  int T = q->T, E = q->E;
  long ld = q->ld, kv = q->kv;
  float scale = 1.0f / sqrtf((float)E);
  for (int t = 0; t < T; ++t) {
    const float *qt = q->q + (size_t)t * ld;
    float *p = q->P + t; /* P[t][s] at p[s * T] (Pᵀ) */
    float maxv = -INFINITY;
    for (int s = 0; s <= t; ++s) {
      const float *k = q->q + (size_t)s * ld + kv;
      float dot = 0;
      for (int e = 0; e < E; ++e) dot += qt[e] * k[e];
      p[s * T] = dot * scale;
      if (p[s * T] > maxv) maxv = p[s * T];
    }
    float sum = 0;
    for (int s = 0; s <= t; ++s) {
      p[s * T] = pk_expf(p[s * T] - maxv);
      sum += p[s * T];
    }
    float inv = 1.0f / sum;
    float *o = q->o + (size_t)t * q->ol;
    for (int e = 0; e < E; ++e) o[e] = 0;
    for (int s = 0; s <= t; ++s) {
      p[s * T] *= inv;
      const float *v = q->q + (size_t)s * ld + 2 * kv;
      for (int e = 0; e < E; ++e) o[e] += p[s * T] * v[e];
    }
    for (int s = t + 1; s < T; ++s) p[s * T] = 0;
  }
}

/* Writes attention_seq's gradients to q->dq from q->dout. (They were
 * added to a dqkv cleared for each layer, 3 MB at the reference batch,
 * whose cleared lines the tasks then read back from L3.) */
PK_MULTIVERSION static void attention_backward_seq(const att_seq *q, int avx2) {
#if defined(__x86_64__)
  if (avx2 && q->E % 8 == 0 && attention_backward_tiled_avx2(q, avx2 > 1)) return;
#endif
  int T = q->T, E = q->E;
  long ld = q->ld, kv = q->kv;
  for (int t = 0; t < T; ++t)
    for (int part = 0; part < 3; ++part) memset(q->dq + (size_t)t * ld + part * kv, 0, (size_t)E * sizeof(float));
  float scale = 1.0f / sqrtf((float)E);
  float dp[1024];
  for (int t = 0; t < T; ++t) {
    float p[1024]; /* P[t][0..t], from Pᵀ */
    for (int s = 0; s <= t; ++s) p[s] = q->P[(size_t)s * T + t];
    const float *dout = q->dout + (size_t)t * q->dl;
    const float *qt = q->q + (size_t)t * ld;
    float *dq = q->dq + (size_t)t * ld;
    float dot_pd = 0;
    for (int s = 0; s <= t; ++s) {
      const float *v = q->q + (size_t)s * ld + 2 * kv;
      float *dv = q->dq + (size_t)s * ld + 2 * kv;
      float d = 0;
      for (int e = 0; e < E; ++e) {
        d += dout[e] * v[e];
        dv[e] += p[s] * dout[e];
      }
      dp[s] = d;
      dot_pd += p[s] * d;
    }
    for (int s = 0; s <= t; ++s) {
      float ds = p[s] * (dp[s] - dot_pd) * scale;
      const float *k = q->q + (size_t)s * ld + kv;
      float *dk = q->dq + (size_t)s * ld + kv;
      for (int e = 0; e < E; ++e) {
        dq[e] += ds * k[e];
        dk[e] += ds * qt[e];
      }
    }
  }
}

/* Sequence b at head h read in place from its own rows (a root). */
static att_seq att_direct(const att_job *j, int b, int h) {
  int D = j->D, E = D / j->H;
  size_t row0 = (size_t)j->off[b];
  return (att_seq){.q = j->qkv + row0 * 3 * D + h * E, .dq = j->dqkv ? j->dqkv + row0 * 3 * D + h * E : NULL,
                   .ld = 3L * D, .kv = D, .P = j->att + ((size_t)b * j->H + h) * j->T * j->T,
                   .T = j->off[b + 1] - j->off[b], .E = E, .o = j->ao ? j->ao + row0 * D + h * E : NULL, .ol = D,
                   .dout = j->dao ? j->dao + row0 * D + h * E : NULL, .dl = D};
}

/* A sharer b at head h gathered into a per-thread view [T][3E]: its root's
 * rows for the shared tokens, then its own. .q is NULL when the scratch
 * could not be had. */
static att_seq att_gather(const att_job *j, int b, int h) {
  int D = j->D, E = D / j->H, skip = j->skip[b], T = skip + j->off[b + 1] - j->off[b];
  float *view = pk_reserve(&view_tls, (size_t)T * 3 * E);
  att_seq q = {.q = view, .ld = 3L * E, .kv = E, .P = j->att + ((size_t)b * j->H + h) * j->T * j->T, .T = T, .E = E};
  for (int t = 0; view && t < T; ++t) {
    size_t row = t < skip ? (size_t)j->off[j->root[b]] + t : (size_t)j->off[b] + t - skip;
    const float *src = j->qkv + row * 3 * D + h * E;
    for (int part = 0; part < 3; ++part) memcpy(view + (size_t)t * 3 * E + part * E, src + part * D, E * sizeof(float));
  }
  return q;
}

/* One (b, h). A sharer's shared tokens are computed again in its view (a
 * few percent of a layer's work) and only its own rows are written out. */
static void attention_task(void *ctx, int task) {
  att_job *j = ctx;
  int b = task / j->H, h = task % j->H, E = j->D / j->H, skip = j->skip[b];
  if (j->off[b + 1] == j->off[b]) return;
  if (skip == 0) {
    att_seq q = att_direct(j, b, h);
    attention_seq(&q, j->avx2);
    return;
  }
  att_seq q = att_gather(j, b, h);
  float *out = q.q ? pk_reserve(&att_out_tls, (size_t)q.T * E) : NULL;
  if (!out) {
    __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
    return;
  }
  q.o = out, q.ol = E;
  attention_seq(&q, j->avx2);
  for (int t = skip; t < q.T; ++t)
    memcpy(j->ao + ((size_t)j->off[b] + t - skip) * j->D + h * E, out + (size_t)t * E, E * sizeof(float));
}

/* One root and head: the root, then each sharer in order, whose gradients
 * at the shared tokens join the root's rows (one task per root: no two
 * threads add to the same rows, and the order is the same at any thread
 * count). */
static void attention_backward_task(void *ctx, int task) {
  att_job *j = ctx;
  int r = j->roots[task / j->H], h = task % j->H, D = j->D, E = D / j->H;
  if (j->off[r + 1] > j->off[r]) {
    att_seq q = att_direct(j, r, h);
    attention_backward_seq(&q, j->avx2);
  }
  for (int b = j->next[r]; b >= 0; b = j->next[b]) {
    if (j->off[b + 1] == j->off[b]) continue; /* no token of its own: its gradient is in the root's rows */
    int skip = j->skip[b];
    att_seq q = att_gather(j, b, h);
    float *grads = q.q ? pk_reserve(&att_out_tls, (size_t)q.T * 4 * E) : NULL;
    if (!grads) {
      __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
      return;
    }
    int T = q.T;
    float *dview = grads, *dout = grads + (size_t)T * 3 * E;
    memset(dout, 0, (size_t)skip * E * sizeof(float)); /* the shared tokens are not its outputs */
    for (int t = skip; t < T; ++t)
      memcpy(dout + (size_t)t * E, j->dao + ((size_t)j->off[b] + t - skip) * D + h * E, E * sizeof(float));
    q.dq = dview, q.dout = dout, q.dl = E;
    attention_backward_seq(&q, j->avx2);
    /* Into the root's rows for the shared tokens, the sharer's own rows
     * for the rest. */
    for (int t = 0; t < T; ++t) {
      size_t row = t < skip ? (size_t)j->off[r] + t : (size_t)j->off[b] + t - skip;
      float *dst = j->dqkv + row * 3 * D + h * E;
      const float *src = dview + (size_t)t * 3 * E;
      if (t >= skip) {
        for (int part = 0; part < 3; ++part) memcpy(dst + part * D, src + part * E, (size_t)E * sizeof(float));
        continue;
      }
      for (int part = 1; part < 3; ++part) /* a shared token's dq is 0 */
        for (int e = 0; e < E; ++e) dst[part * D + e] += src[part * E + e];
    }
  }
}

/* ------------------------------------------------------- packed weights */

/* The weight matrices in GEMM panel layout: per layer qkv, proj, fc, fcp
 * (W_QKV..W_FCP), then the LM head; each as W (op(B) of the forward's
 * products) or transposed (the input gradients'). Decoding multiplies by
 * each of them every step: reading them unpacked (a 64-row product, B
 * rows 2 KB apart on two L1 sets) reached 73% of the FMA peak on the
 * MLP's first product, packing them each call cost as much as the product,
 * packed once 86% (2 threads, best of 40 interleaved rounds). A training
 * pass packs them once too: each GEMM task had packed all of B for itself
 * (twice per product at two threads), and with B packed the GEMM splits
 * its rows into more tasks than threads (gemm). */
enum { W_QKV, W_PROJ, W_FC, W_FCP, W_PER_LAYER };

/* Matrix `which` (W_PER_LAYER: the head) is [K][N] as stored. */
static void weight_shape(const pk_model *m, int which, int *K, int *N) {
  int D = m->d.d_model, F = m->d.d_ff;
  switch (which) {
  case W_QKV: *K = D; *N = 3 * D; break;
  case W_PROJ: *K = D; *N = D; break;
  case W_FC: *K = D; *N = F; break;
  case W_FCP: *K = F; *N = D; break;
  default: *K = D; *N = m->d.vocab; /* the head */
  }
}

/* Where matrix `which` of layer l (or the head: l = layers) starts in p. */
static float *packed_weight(const pk_model *m, const weight_packs *p, int l, int which) {
  size_t at = 0;
  for (int i = 0; i < l * W_PER_LAYER + (l < m->d.layers ? which : 0); ++i) {
    int K, N;
    weight_shape(m, i % W_PER_LAYER, &K, &N);
    at += p->transposed ? pk_packed_b_floats(N, K) : pk_packed_b_floats(K, N);
  }
  return p->data + at;
}

static const float *weight_of(const pk_model *m, const float *w, int l, int which) {
  if (l == m->d.layers) return w + m->lay.head_w;
  const pk_layer_offsets *o = &m->lay.layer[l];
  size_t at[] = {o->qkv_w, o->proj_w, o->fc_w, o->fcp_w};
  return w + at[which];
}

typedef struct pack_job {
  const pk_model *m;
  const float *w;
  weight_packs *p;
} pack_job;

static void pack_task(void *ctx, int task) {
  const pack_job *j = ctx;
  int l = task / W_PER_LAYER, which = l < j->m->d.layers ? task % W_PER_LAYER : W_PER_LAYER;
  int K, N;
  weight_shape(j->m, which, &K, &N);
  const float *src = weight_of(j->m, j->w, l, which);
  if (j->p->transposed) pk_pack_b(1, N, K, src, N, packed_weight(j->m, j->p, l, which));
  else pk_pack_b(0, K, N, src, N, packed_weight(j->m, j->p, l, which));
}

/* Packs every matrix of the weights w into p (as Wᵀ when transposed);
 * with `when_threads` only if the pool has more than one thread (one
 * thread packs each B as it multiplies, in cache: a training pass packing
 * every matrix first was 1% slower so). */
static int pack_weights(pk_model *m, const float *w, weight_packs *p, int transposed, int when_threads) {
  int L = m->d.layers, K, N;
  size_t need = 0;
  p->transposed = transposed;
  p->ready = 0;
  if (when_threads && pk_threads() < 2) return 0;
  for (int which = 0; which <= W_PER_LAYER; ++which) {
    weight_shape(m, which, &K, &N);
    need += (which == W_PER_LAYER ? 1 : (size_t)L) * (transposed ? pk_packed_b_floats(N, K) : pk_packed_b_floats(K, N));
  }
  if (need > p->cap) {
    free(p->data);
    p->data = floats_new(need);
    p->cap = p->data ? need : 0;
    if (!p->data) return -1;
  }
  pack_job job = {m, w, p};
  pk_parallel_for(L * W_PER_LAYER + 1, pack_task, &job);
  p->ready = 1;
  return 0;
}

/* op(W)'s K and N for matrix `which` (W with forward's packs p, Wᵀ with
 * backward's); returns the length of W's stored rows. */
static int op_shape(const pk_model *m, const weight_packs *p, int which, int *K, int *N) {
  weight_shape(m, which, K, N);
  int ld = *N;
  if (p->transposed) {
    int k = *K;
    *K = *N, *N = k;
  }
  return ld;
}

/* C = A · op(W) (+ bias; + residual when not NULL) for `rows` rows, W
 * matrix `which` of layer l of the weights w (the head: l = layers), op(W)
 * = W with p forward's packs, Wᵀ with backward's; from p when it is ready
 * (the same bits either way). A and C (and the residual) are rows of
 * op(W)'s K and N floats. */
static void weight_product(const pk_model *m, const float *w, const weight_packs *p, int l, int which, int rows,
                           const float *A, const float *bias, const float *residual, float *C) {
  int K, N, ld = op_shape(m, p, which, &K, &N);
  if (p->ready) {
    const float *packed = packed_weight(m, p, l, which);
    if (residual) pk_gemm_packed_residual(0, rows, N, K, A, K, packed, residual, N, C, N, bias);
    else pk_gemm_packed(0, rows, N, K, A, K, packed, 0.0f, C, N, bias);
    return;
  }
  const float *W = weight_of(m, w, l, which);
  if (residual) pk_gemm_residual(0, p->transposed, rows, N, K, A, K, W, ld, residual, N, C, N, bias);
  else pk_gemm_bias(0, p->transposed, rows, N, K, A, K, W, ld, 0.0f, C, N, bias);
}

/* C = (A·W) ⊙ times for weight `which` of layer l, as weight_product
 * without bias and residual: the MLP's input gradient times GELU's slope,
 * taken as the product's tiles are stored (pk_gemm_times; a separate pass
 * over the 4 MB of dfc was 1.5% of a training pass at two threads). */
static void weight_product_times(const pk_model *m, const float *w, const weight_packs *p, int l, int which,
                                 int rows, const float *A, const float *times, float *C) {
  int K, N, ld = op_shape(m, p, which, &K, &N);
  if (p->ready) pk_gemm_times(0, rows, N, K, A, K, NULL, 0, packed_weight(m, p, l, which), C, N, times, N);
  else pk_gemm_times(p->transposed, rows, N, K, A, K, weight_of(m, w, l, which), ld, NULL, C, N, times, N);
}

/* The embeddings: forward, x = wte[token] + wpe[position] a sequence per
 * task; backward, their gradients from dres, EMBED_COLUMNS columns per
 * task over every row in order (a token's rows add into one gradient row,
 * so the rows cannot be split; each element's sum keeps the serial loop's
 * order). Both ran on the calling thread with the pool idle. */
enum { EMBED_COLUMNS = 32 };

typedef struct embed_job {
  pk_model *m;
  const float *w;
  const int32_t *tokens;
  const acts *a;
  const float *dres; /* backward */
  int T, rows;
} embed_job;

static void embed_task(void *ctx, int b) {
  const embed_job *j = ctx;
  const acts *a = j->a;
  int D = j->m->d.d_model, V = j->m->d.vocab;
  for (int i = 0; i < a->off[b + 1] - a->off[b]; ++i) {
    int t = a->skip[b] + i;
    int32_t tok = j->tokens[(size_t)b * j->T + t];
    if (tok < 0 || tok >= V) tok = 0;
    const float *e = j->w + j->m->lay.wte + (size_t)tok * D;
    const float *p = j->w + j->m->lay.wpe + (size_t)t * D;
    float *xn = a->layer[0].x + ((size_t)a->off[b] + i) * D;
    for (int k = 0; k < D; ++k) xn[k] = e[k] + p[k];
  }
}

/* a += x, b += x over n floats (distinct arrays: the loop vectorises). */
PK_MULTIVERSION static void add_to_both(float *restrict a, float *restrict b, const float *restrict x, int n) {
  for (int i = 0; i < n; ++i) {
    a[i] += x[i];
    b[i] += x[i];
  }
}

static void embed_grad_task(void *ctx, int task) {
  const embed_job *j = ctx;
  const acts *a = j->a;
  int D = j->m->d.d_model, V = j->m->d.vocab;
  int c0 = task * EMBED_COLUMNS, c1 = c0 + EMBED_COLUMNS < D ? c0 + EMBED_COLUMNS : D;
  float *g = j->m->grads;
  for (int r = 0; r < j->rows; ++r) {
    for (int own = 0; own < a->off[r + 1] - a->off[r]; ++own) {
      size_t n = (size_t)a->off[r] + own;
      int t = a->skip[r] + own;
      int32_t tok = j->tokens[(size_t)r * j->T + t];
      if (tok < 0 || tok >= V) tok = 0;
      float *gw = g + j->m->lay.wte + (size_t)tok * D;
      float *gp = g + j->m->lay.wpe + (size_t)t * D;
      add_to_both(gw + c0, gp + c0, j->dres + n * D + c0, c1 - c0);
    }
  }
}

/* --------------------------------------------------------------- forward */

/* Runs the model on tokens [B][T] with `w` as weights, keeping every
 * activation in `a`; only the first lengths[b] tokens of sequence b are
 * computed (lengths NULL: all T), as rows a->off[b].. (set_rows), and with
 * `share` a prefix shared with an earlier sequence only there; logits end
 * in a->logits [a->N][V] (row_of finds a token's). for_backward: the MLP
 * keeps GELU's slope instead of its input (layer_acts.fc). */
static int forward(pk_model *m, const float *w, const int32_t *tokens, int B,
                   int T, const uint32_t *lengths, int share, int for_backward, acts *a) {
  const pk_dims d = m->d;
  m->kept = 0; /* the activations are about to be overwritten */
  if (T > d.max_len || T > 1024) return -1;
  if (make_acts(m, B, T, lengths, share ? tokens : NULL, a)) return -1;
  size_t N = a->N;
  m->last_rows = N;
  int D = d.d_model, F = d.d_ff;
  embed_job ej = {m, w, tokens, a, NULL, T, 0};
  pk_parallel_ranges(B, embed_task, &ej);
  if (pack_weights(m, w, &m->fwd_packs, 0, 1)) return -1;
  for (int l = 0; l < d.layers; ++l) {
    const pk_layer_offsets *o = &m->lay.layer[l];
    layer_acts *la = &a->layer[l];
    parallel_layernorm(la->x, w + o->ln1_w, w + o->ln1_b, la->ln1, la->mu1, la->rs1, N, D);
    weight_product(m, w, &m->fwd_packs, l, W_QKV, (int)N, la->ln1, w + o->qkv_b, NULL, la->qkv);
    att_job job = {la->qkv, la->att, la->ao, NULL, NULL, T, d.heads, D, pk_kernel_level(),
                   a->off, a->root, a->skip, a->next, a->roots, 0};
    pk_parallel_ranges(B * d.heads, attention_task, &job);
    if (job.failed) return -1;
    weight_product(m, w, &m->fwd_packs, l, W_PROJ, (int)N, la->ao, w + o->proj_b, la->x, la->xm);
    parallel_layernorm(la->xm, w + o->ln2_w, w + o->ln2_b, la->ln2, la->mu2, la->rs2, N, D);
    weight_product(m, w, &m->fwd_packs, l, W_FC, (int)N, la->ln2, w + o->fc_b, NULL, la->fc);
    parallel_gelu(la->fc, la->ge, N * F, for_backward ? GELU_KEEP : GELU_VALUE);
    float *next = l + 1 < d.layers ? a->layer[l + 1].x : a->xf;
    weight_product(m, w, &m->fwd_packs, l, W_FCP, (int)N, la->ge, w + o->fcp_b, la->xm, next);
  }
  parallel_layernorm(a->xf, w + m->lay.lnf_w, w + m->lay.lnf_b, a->lnf, a->muf, a->rsf, N, D);
  weight_product(m, w, &m->fwd_packs, d.layers, W_PER_LAYER, (int)N, a->lnf, NULL, NULL, a->logits);
  return 0;
}

/* The activation row of sequence b's token t (t < its length). */
static size_t row_of(const acts *a, int b, int t) {
  return t < a->skip[b] ? (size_t)a->off[a->root[b]] + t : (size_t)a->off[b] + t - a->skip[b];
}

/* log-softmax(z / temp)[k] for a row of V logits; with exps, the row's
 * exponentials (as floats) and their sum are kept there and in *sum, as
 * dlogits_task computes them. */
static float log_prob(const float *z, int V, float temp, int k, float *exps, double *sum_out) {
  float maxv = -INFINITY;
  for (int i = 0; i < V; ++i) maxv = fmaxf(maxv, z[i] / temp);
  double sum = 0;
  for (int i = 0; i < V; ++i) {
    double e = exp((double)(z[i] / temp - maxv));
    if (exps) exps[i] = (float)e;
    sum += e;
  }
  if (exps) *sum_out = sum;
  return (float)((double)(z[k] / temp - maxv) - log(sum));
}

static int logits_pass(pk_model *m, const int32_t *tokens, int rows, int stride, float *out) {
  acts a;
  if (forward(m, m->params, tokens, rows, stride, NULL, 0, 0, &a)) return -1;
  memcpy(out, a.logits, (size_t)rows * stride * m->d.vocab * sizeof(float));
  return 0;
}

typedef struct logprobs_job {
  const acts *a;
  const int32_t *tokens;
  int V, stride;
  float temperature;
  float *out;
  pk_model *keep; /* not NULL: keep each own row's softmax there (kept_softmax) */
} logprobs_job;

/* Sequence r's log-probs: each is the softmax of one row of logits (an
 * exponential per vocabulary entry), so the sequences go to the pool; a
 * serial loop here was 0.42 ms of the reference batch's forward with the
 * worker idle. */
static void logprobs_task(void *ctx, int r) {
  const logprobs_job *j = ctx;
  const acts *a = j->a;
  for (int t = 0; t < j->stride; ++t) {
    size_t n = (size_t)r * j->stride + t;
    if (t < 1 || t >= a->skip[r] + a->off[r + 1] - a->off[r]) {
      j->out[n] = 0.0f;
      continue;
    }
    size_t row = row_of(a, r, t - 1);
    /* A row another sequence shares is kept by its own sequence's task. */
    int keep = j->keep && t - 1 >= a->skip[r];
    j->out[n] = log_prob(a->logits + row * j->V, j->V, j->temperature, j->tokens[n],
                         keep ? j->keep->soft_exps + row * j->V : NULL, keep ? j->keep->soft_sums + row : NULL);
    if (keep) j->keep->soft_set[row] = 1;
  }
}

/* Room for kept_softmax's rows, none of them set; -1 when it could not be
 * had. */
static int kept_softmax(pk_model *m, size_t rows) {
  size_t V = (size_t)m->d.vocab;
  if (rows > m->soft_cap) {
    free(m->soft_exps);
    free(m->soft_sums);
    free(m->soft_set);
    m->soft_exps = floats_new(rows * V);
    m->soft_sums = malloc(rows * sizeof(double));
    m->soft_set = malloc(rows);
    m->soft_cap = m->soft_exps && m->soft_sums && m->soft_set ? rows : 0;
    if (!m->soft_cap) return -1;
  }
  memset(m->soft_set, 0, rows);
  return 0;
}

/* out[r][t] from the logits of a forward pass (the ABI's convention). */
static void logprobs_from(pk_model *m, const acts *a, const int32_t *tokens, int rows, int stride,
                          float temperature, float *out, int keep) {
  logprobs_job job = {a, tokens, m->d.vocab, stride, temperature, out, keep ? m : NULL};
  pk_parallel_ranges(rows, logprobs_task, &job);
}

static int logprobs_pass(pk_model *m, int reference, const int32_t *tokens,
                const uint32_t *lengths, int rows, int stride,
                float temperature, float *out) {
  acts a;
  if (forward(m, reference ? m->ref : m->params, tokens, rows, stride, lengths, m->share, 0, &a)) return -1;
  logprobs_from(m, &a, tokens, rows, stride, temperature, out, 0);
  return 0;
}

/* The policy's log-probs, keeping the pass (activations and batch) for
 * backward_kept_pass. */
static int logprobs_keep_pass(pk_model *m, const int32_t *tokens, const uint32_t *lengths,
                              int rows, int stride, float temperature, float *out) {
  acts a;
  if (forward(m, m->params, tokens, rows, stride, lengths, m->share, 1, &a)) return -1;
  if (kept_softmax(m, a.N)) return -1;
  logprobs_from(m, &a, tokens, rows, stride, temperature, out, 1);
  size_t count = (size_t)rows * stride;
  if (count > m->kept_cap || (size_t)rows > m->kept_cap) {
    size_t cap = count > (size_t)rows ? count : (size_t)rows;
    free(m->kept_tokens);
    free(m->kept_lengths);
    m->kept_tokens = malloc(cap * sizeof(int32_t));
    m->kept_lengths = malloc(cap * sizeof(uint32_t));
    m->kept_cap = m->kept_tokens && m->kept_lengths ? cap : 0;
    if (!m->kept_cap) return -1;
  }
  memcpy(m->kept_tokens, tokens, count * sizeof(int32_t));
  memcpy(m->kept_lengths, lengths, (size_t)rows * sizeof(uint32_t));
  m->kept_rows = rows;
  m->kept_stride = stride;
  m->kept_temperature = temperature;
  m->kept_share = m->share;
  m->kept = 1;
  return 0;
}

/* -------------------------------------------------------------- backward */

/* A weight gradient, C += Aᵀ·B (with b_sums += B's column sums unless
 * NULL), as a background item (pk_post). */
typedef struct weight_grad {
  int M, N, K;
  const float *A, *B;
  float *C, *b_sums;
} weight_grad;

static void weight_grad_task(void *ctx, int task) {
  const weight_grad *j = ctx;
  (void)task;
  if (j->b_sums) pk_gemm_sums(1, j->M, j->N, j->K, j->A, j->M, j->B, j->N, 1.0f, j->C, j->N, j->b_sums);
  else pk_gemm(1, 0, j->M, j->N, j->K, j->A, j->M, j->B, j->N, 1.0f, j->C, j->N);
}

/* Starts C += Aᵀ·B (A [K][M], B [K][N], C [M][N]) beside what follows:
 * the weight gradients need nothing the input gradients' chain computes
 * after them, and run on one thread each, as one task, while the other
 * threads go on along the chain. Split over two threads a weight
 * gradient's tasks each packed all of the operand they share and waited
 * for the slower one. The caller waits (pk_wait) before it overwrites A or
 * B, and before it returns. */
static int post_weight_grad(weight_grad *j, int M, int N, int K, const float *A, const float *B, float *C,
                            float *b_sums) {
  *j = (weight_grad){M, N, K, A, B, C, b_sums};
  return pk_post(weight_grad_task, j);
}

static int backward_from(pk_model *m, acts a, const int32_t *tokens,
                         int rows, int stride, float temperature, const float *grad, int kept);

static int backward_pass(pk_model *m, const int32_t *tokens, const uint32_t *lengths,
                int rows, int stride, float temperature, const float *grad) {
  acts a;
  if (forward(m, m->params, tokens, rows, stride, lengths, m->share, 1, &a)) return -1;
  return backward_from(m, a, tokens, rows, stride, temperature, grad, 0);
}

/* Back-propagation through the kept pass; -2 when none is kept. */
static int backward_kept_pass(pk_model *m, const float *grad) {
  if (!m->kept) return -2;
  m->kept = 0;
  acts a;
  /* The same sizes carve the same buffer: the kept activations. */
  if (make_acts(m, m->kept_rows, m->kept_stride, m->kept_lengths, m->kept_share ? m->kept_tokens : NULL, &a))
    return -1;
  return backward_from(m, a, m->kept_tokens, m->kept_rows, m->kept_stride,
                       m->kept_temperature, grad, 1);
}

/* Back-propagation from dL/dlogprob through the forward pass `a` of tokens. */
/* dL/dlogits[n] = g[n+1] (onehot(tok[n+1]) - softmax(z[n]/T)) / T, one
 * sequence's rows per task; a root's rows also take the terms of its
 * sharers' shared tokens (summed in sharer order after the root's own). */
typedef struct dlogits_job {
  const float *logits;
  const int32_t *tokens;
  const float *grad;
  float *dlogits;
  int T, V;
  float temperature;
  const acts *a;
  const pk_model *kept; /* not NULL: rows with kept_softmax's values take them */
} dlogits_job;

/* Whether sequence b's loss has a term at the row of its token t (the
 * prediction of token t + 1, a row of root r = b's root or b) and its
 * dL/dlogprob *g and target token. */
static int dlogits_term(const dlogits_job *j, int b, int t, float *g, int *target) {
  const acts *a = j->a;
  if (t + 1 >= a->skip[b] + a->off[b + 1] - a->off[b]) return 0;
  size_t n = (size_t)b * j->T + t + 1;
  *g = j->grad[n], *target = j->tokens[n];
  return *g != 0.0f;
}

static void dlogits_task(void *ctx, int r) {
  const dlogits_job *j = ctx;
  const acts *a = j->a;
  int V = j->V, skip = a->skip[r], len = skip + a->off[r + 1] - a->off[r];
  float temp = j->temperature;
  for (int t = skip; t < len; ++t) {
    /* The terms at this row: sequence r's, then, a root's row, those of the
     * sharers whose shared tokens include t (usually only the last shared
     * token, which predicts each sharer's first token of its own). */
    int terms = 0, target = 0;
    float gn = 0, g;
    int y;
    for (int b = r; b >= 0; b = skip == 0 ? a->next[b] : -1)
      if ((b == r || t < a->skip[b]) && dlogits_term(j, b, t, &g, &y)) ++terms, gn = g, target = y;
    if (terms == 0) continue;
    const float *z = j->logits + row_of(a, r, t) * V;
    float *dz = j->dlogits + row_of(a, r, t) * V;
    /* Each exponential once (kept in dz as a float), summed in double;
     * log_prob's, when the kept pass has them. */
    double sum = 0;
    size_t row = row_of(a, r, t);
    if (j->kept && j->kept->soft_set[row]) {
      memcpy(dz, j->kept->soft_exps + row * V, (size_t)V * sizeof(float));
      sum = j->kept->soft_sums[row];
    } else {
      float maxv = -INFINITY;
      for (int i = 0; i < V; ++i) maxv = fmaxf(maxv, z[i] / temp);
      for (int i = 0; i < V; ++i) {
        double e = exp((double)(z[i] / temp - maxv));
        dz[i] = (float)e;
        sum += e;
      }
    }
    for (int i = 0; i < V; ++i) {
      float p = (float)((double)dz[i] / sum);
      if (terms == 1) {
        dz[i] = gn * ((i == target) - p) / temp;
        continue;
      }
      float total = 0;
      for (int b = r; b >= 0; b = a->next[b])
        if ((b == r || t < a->skip[b]) && dlogits_term(j, b, t, &g, &y)) total += g * ((i == y) - p) / temp;
      dz[i] = total;
    }
  }
}

static int backward_from(pk_model *m, acts a, const int32_t *tokens,
                         int rows, int stride, float temperature, const float *grad, int kept) {
  const pk_dims d = m->d;
  size_t N = a.N;
  int D = d.d_model, F = d.d_ff, V = d.vocab, T = stride;
  const float *w = m->params;
  float *g = m->grads;
  /* Scratch: dres [N][D], dln [N][D], dfc [N][F], dqkv [N][3D], dlogits
   * [N][V]: dfc and dqkv apart, so neither waits for the weight gradient
   * still reading the other. */
  size_t need = N * (5 * (size_t)D + F + V);
  if (need > m->scratch_cap) {
    free(m->scratch);
    m->scratch = floats_new(need);
    m->scratch_cap = m->scratch ? need : 0;
    if (!m->scratch) return -1;
  }
  float *dres = m->scratch, *dln = dres + N * D, *dfc = dln + N * D, *dqkv = dfc + N * F;
  float *dlogits = dqkv + N * 3 * D;
  if (pack_weights(m, w, &m->bwd_packs, 1, 1)) return -1;
  parallel_copy(dres, NULL, N * D);
  parallel_copy(dlogits, NULL, N * V);

  dlogits_job dj = {a.logits, tokens, grad, dlogits, T, V, temperature, &a, kept ? m : NULL};
  pk_parallel_ranges(rows, dlogits_task, &dj);
  /* The weight gradients in the background (post_weight_grad); each is
   * waited for before its inputs change: fcp's and proj's read dres, which
   * the LayerNorm after them adds to; fc's dfc and qkv's dqkv, which the
   * next layer down rewrites. */
  weight_grad head, fcp, fc, proj, qkv;
  int head_item = post_weight_grad(&head, D, V, (int)N, a.lnf, dlogits, g + m->lay.head_w, NULL);
  int fc_item = -1, qkv_item = -1;
  weight_product(m, w, &m->bwd_packs, d.layers, W_PER_LAYER, (int)N, dlogits, NULL, NULL, dln);
  layernorm_backward(dln, a.xf, w + m->lay.lnf_w, a.muf, a.rsf, dres,
                     g + m->lay.lnf_w, g + m->lay.lnf_b, N, D);

  int failed = 0;
  for (int l = d.layers - 1; l >= 0 && !failed; --l) {
    const pk_layer_offsets *o = &m->lay.layer[l];
    layer_acts *la = &a.layer[l];
    /* MLP: next = xm + gelu(ln2(xm) Wfc + bfc) Wfcp + bfcp */
    int fcp_item = post_weight_grad(&fcp, F, D, (int)N, la->ge, dres, g + o->fcp_w, g + o->fcp_b);
    pk_wait(fc_item); /* the layer above's, reading dfc */
    weight_product_times(m, w, &m->bwd_packs, l, W_FCP, (int)N, dres, la->fc, dfc); /* la->fc: gelu' */
    fc_item = post_weight_grad(&fc, D, F, (int)N, la->ln2, dfc, g + o->fc_w, g + o->fc_b);
    weight_product(m, w, &m->bwd_packs, l, W_FC, (int)N, dfc, NULL, NULL, dln);
    pk_wait(fcp_item);
    layernorm_backward(dln, la->xm, w + o->ln2_w, la->mu2, la->rs2, dres,
                       g + o->ln2_w, g + o->ln2_b, N, D);
    /* Attention: xm = x + attn(ln1(x)) Wproj + bproj. Above the first
     * layer, proj's weight gradient is posted after attention's backward,
     * so that a worker done with fc's helps with the chain's two steps
     * here; the first layer's goes first, as nothing follows its qkv
     * gradient to hide a late item behind. */
    int proj_item = -1, proj_early = l == 0;
    if (proj_early) proj_item = post_weight_grad(&proj, D, D, (int)N, la->ao, dres, g + o->proj_w, g + o->proj_b);
    float *dao = dln;
    weight_product(m, w, &m->bwd_packs, l, W_PROJ, (int)N, dres, NULL, NULL, dao);
    pk_wait(qkv_item); /* the layer above's, reading dqkv */
    /* every row of dqkv written by its sequence's task */
    att_job job = {la->qkv, la->att, NULL, dqkv, dao, T, d.heads, D, pk_kernel_level(),
                   a.off, a.root, a.skip, a.next, a.roots, 0};
    pk_parallel_ranges(a.root_count * d.heads, attention_backward_task, &job);
    failed = job.failed;
    if (!proj_early) proj_item = post_weight_grad(&proj, D, D, (int)N, la->ao, dres, g + o->proj_w, g + o->proj_b);
    qkv_item = failed ? -1 : post_weight_grad(&qkv, D, 3 * D, (int)N, la->ln1, dqkv, g + o->qkv_w, g + o->qkv_b);
    if (!failed) weight_product(m, w, &m->bwd_packs, l, W_QKV, (int)N, dqkv, NULL, NULL, dln);
    pk_wait(proj_item);
    if (!failed) layernorm_backward(dln, la->x, w + o->ln1_w, la->mu1, la->rs1, dres,
                                    g + o->ln1_w, g + o->ln1_b, N, D);
  }
  pk_wait(fc_item);
  pk_wait(qkv_item);
  pk_wait(head_item);
  if (failed) return -1;
  embed_job ej = {m, NULL, tokens, &a, dres, T, rows};
  pk_parallel_for((D + EMBED_COLUMNS - 1) / EMBED_COLUMNS, embed_grad_task, &ej);
  if (m->tied) {
    /* One matrix used twice: the head's gradient joins the embedding's. */
    float *gh = g + m->lay.head_w, *gw = g + m->lay.wte;
    for (int i = 0; i < D; ++i) {
      for (int v = 0; v < V; ++v) {
        gw[(size_t)v * D + i] += gh[(size_t)i * V + v];
        gh[(size_t)i * V + v] = 0;
      }
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- decode */

typedef struct decode_job {
  pk_model *m;
  int layer;
  int n;            /* rows taking a token this step */
  const int *row;   /* [n]: their rows of the decoding (of the cache) */
  const float *qkv; /* [n][3D] of the new tokens */
  float *ao;        /* [n][D] */
  int avx2;         /* the caller's kernel choice */
} decode_job;

/* The cache holds each head's keys (values) for one row contiguously,
 * [L][rows][heads][max_len][E]: a decoding step's attention for (b, h) then
 * streams one block instead of gathering E floats from every D-float row. */
static float *cache_at(pk_model *m, float *cache, int l, int b, int h, int t) {
  size_t E = (size_t)(m->d.d_model / m->d.heads);
  return cache + ((((size_t)l * m->dec_rows + b) * m->d.heads + h) * m->d.max_len + t) * E;
}

/* Stores a row's new key and value (from its qkv row) at position t. */
static void cache_store(pk_model *m, int l, int b, int t, const float *qkv) {
  int D = m->d.d_model, H = m->d.heads, E = D / H;
  for (int h = 0; h < H; ++h) {
    memcpy(cache_at(m, m->kcache, l, b, h, t), qkv + D + h * E, (size_t)E * sizeof(float));
    memcpy(cache_at(m, m->vcache, l, b, h, t), qkv + 2 * D + h * E, (size_t)E * sizeof(float));
  }
}

#if defined(__x86_64__)
/* Eight dot products q·k_s at once: one 8-lane partial sum per key, then
 * the eight reduced together (two rounds of horizontal adds and a lane
 * swap) instead of eight separate horizontal sums. */
PK_AVX2 static inline __m256 dot8x8(const float *q, const float *k, long ks, int E) {
  __m256 a[8];
  for (int j = 0; j < 8; ++j) a[j] = _mm256_setzero_ps();
  for (int e = 0; e < E; e += 8) {
    __m256 qv = _mm256_loadu_ps(q + e);
    for (int j = 0; j < 8; ++j) a[j] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + (size_t)j * ks + e), a[j]);
  }
  __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* o[0:8*NV] = sum over s of w[s] · v_s[0:8*NV], v_s = v + s*vs, kept in
 * registers (an axpy per key into o was a chain through memory). */
#define DECODE_WEIGHTED_SUM(NAME, NV)                                                              \
  PK_AVX2 static inline void NAME(const float *w, int n, const float *v, long vs, float *o) {     \
    __m256 acc[NV];                                                                                \
    for (int i = 0; i < NV; ++i) acc[i] = _mm256_setzero_ps();                                     \
    for (int s = 0; s < n; ++s) {                                                                  \
      __m256 ws = _mm256_broadcast_ss(w + s);                                                      \
      for (int i = 0; i < NV; ++i)                                                                 \
        acc[i] = _mm256_fmadd_ps(ws, _mm256_loadu_ps(v + (size_t)s * vs + 8 * i), acc[i]);        \
    }                                                                                              \
    for (int i = 0; i < NV; ++i) _mm256_storeu_ps(o + 8 * i, acc[i]);                              \
  }
DECODE_WEIGHTED_SUM(weighted_sum32, 4)
DECODE_WEIGHTED_SUM(weighted_sum8, 1)
#undef DECODE_WEIGHTED_SUM

PK_AVX2 __attribute__((noinline)) static void decode_attention_task_avx2(decode_job *j, int task) {
  pk_model *m = j->m;
  int H = m->d.heads, D = m->d.d_model, E = D / H;
  int i = task / H, h = task % H, b = j->row[i], pos = m->positions[b];
  float scale = 1.0f / sqrtf((float)E);
  float p[1024];
  const float *q = j->qkv + (size_t)i * 3 * D + h * E;
  const float *k0 = cache_at(m, m->kcache, j->layer, b, h, 0);
  const float *v0 = cache_at(m, m->vcache, j->layer, b, h, 0);
  int s = 0;
  __m256 sc = _mm256_set1_ps(scale);
  for (; s + 8 <= pos + 1; s += 8) _mm256_storeu_ps(p + s, _mm256_mul_ps(dot8x8(q, k0 + (size_t)s * E, E, E), sc));
  for (; s <= pos; ++s) p[s] = dot8(q, k0 + (size_t)s * E, E) * scale;
  float inv = 1.0f / softmax_unnormalised8(p, pos + 1);
  for (s = 0; s <= pos; ++s) p[s] *= inv;
  float *o = j->ao + (size_t)i * D + h * E;
  int e = 0;
  for (; e + 32 <= E; e += 32) weighted_sum32(p, pos + 1, v0 + e, E, o + e);
  for (; e < E; e += 8) weighted_sum8(p, pos + 1, v0 + e, E, o + e);
}
#endif

PK_MULTIVERSION static void decode_attention_pair(decode_job *j, int task) {
  pk_model *m = j->m;
#if defined(__x86_64__)
  if (j->avx2 && (m->d.d_model / m->d.heads) % 8 == 0) {
    decode_attention_task_avx2(j, task);
    return;
  }
#endif
  int H = m->d.heads, D = m->d.d_model, E = D / H;
  int i = task / H, h = task % H, b = j->row[i], pos = m->positions[b];
  float scale = 1.0f / sqrtf((float)E);
  float p[1024];
  const float *q = j->qkv + (size_t)i * 3 * D + h * E;
  float maxv = -INFINITY;
  for (int s = 0; s <= pos; ++s) {
    const float *k = cache_at(m, m->kcache, j->layer, b, h, s);
    float dot = 0;
    for (int e = 0; e < E; ++e) dot += q[e] * k[e];
    p[s] = dot * scale;
    if (p[s] > maxv) maxv = p[s];
  }
  float sum = 0;
  for (int s = 0; s <= pos; ++s) {
    p[s] = pk_expf(p[s] - maxv);
    sum += p[s];
  }
  float *o = j->ao + (size_t)i * D + h * E;
  for (int e = 0; e < E; ++e) o[e] = 0;
  for (int s = 0; s <= pos; ++s) {
    const float *v = cache_at(m, m->vcache, j->layer, b, h, s);
    float ps = p[s] / sum;
    for (int e = 0; e < E; ++e) o[e] += ps * v[e];
  }
}

/* (b, h) pairs per pool task: one pair is a few hundred nanoseconds of
 * work, about what claiming a task costs when both threads contend for the
 * counter. */
#define DECODE_PAIRS 8

static void decode_attention_task(void *ctx, int task) {
  decode_job *j = ctx;
  int pairs = j->n * j->m->d.heads;
  for (int i = task * DECODE_PAIRS; i < (task + 1) * DECODE_PAIRS && i < pairs; ++i) decode_attention_pair(j, i);
}

static float *dec_weights(const pk_model *m, int l, int which) { return packed_weight(m, &m->dec_packs, l, which); }

static int decode_begin_pass(pk_model *m, const int32_t *tokens, const uint32_t *lengths,
                    int rows, int stride, float *logits) {
  const pk_dims d = m->d;
  size_t D = (size_t)d.d_model;
  for (int r = 0; r < rows; ++r) {
    if (lengths[r] < 1 || (int)lengths[r] > stride) return -1;
  }
  size_t need = (size_t)d.layers * rows * d.max_len * D;
  if (need > m->cache_cap) {
    free(m->kcache);
    free(m->vcache);
    m->kcache = floats_new(need);
    m->vcache = floats_new(need);
    m->cache_cap = (m->kcache && m->vcache) ? need : 0;
    if (!m->cache_cap) return -1;
  }
  free(m->positions);
  free(m->dec_going);
  free(m->dec_index);
  free(m->dec_tokens);
  m->dec_rows = 0;
  m->positions = malloc((size_t)rows * sizeof(int));
  m->dec_going = malloc((size_t)rows);
  m->dec_index = malloc((size_t)rows * sizeof(int));
  m->dec_tokens = malloc((size_t)rows * sizeof(int32_t));
  if (!m->positions || !m->dec_going || !m->dec_index || !m->dec_tokens) return -1;
  memset(m->dec_going, 1, (size_t)rows);
  m->dec_rows = rows;
  /* A GRPO batch samples each prompt G times: the prefill computes a
   * shared prefix once (set_rows; a prompt repeated whole has no row of its
   * own), which changes no bit, and every row's cache is filled from the
   * rows that hold its tokens. Always, whatever share_prefixes says. */
  acts a;
  if (forward(m, m->params, tokens, rows, stride, lengths, 1, 0, &a)) {
    m->dec_rows = 0;
    return -1;
  }
  /* The prefill packed these very matrices (W of m->params) when the pool
   * has two threads or more: decoding takes them instead of packing again. */
  if (m->fwd_packs.ready) {
    weight_packs spare = m->dec_packs;
    m->dec_packs = m->fwd_packs;
    m->fwd_packs = spare;
    m->fwd_packs.ready = 0;
  } else if (pack_weights(m, m->params, &m->dec_packs, 0, 0)) {
    m->dec_rows = 0;
    return -1;
  }
  for (int l = 0; l < d.layers; ++l) {
    for (int b = 0; b < rows; ++b) {
      for (int t = 0; t < (int)lengths[b]; ++t) cache_store(m, l, b, t, a.layer[l].qkv + row_of(&a, b, t) * 3 * D);
    }
  }
  for (int b = 0; b < rows; ++b) {
    m->positions[b] = (int)lengths[b];
    memcpy(logits + (size_t)b * d.vocab, a.logits + row_of(&a, b, (int)lengths[b] - 1) * d.vocab,
           (size_t)d.vocab * sizeof(float));
  }
  return 0;
}

/* Rows row[0..n-1] of the decoding take tokens[0..n-1] and write their
 * next logits [n][V], with buf (n * DECODE_ROW_FLOATS(d) floats) as their
 * work space; positions checked by the caller. They are rows first ..
 * first + n - 1 of a step of `total` rows, whose GELU pass gives each
 * element its form (gelu_part): the same bits however the step's rows
 * are split. */
#define DECODE_ROW_FLOATS(d) ((size_t)7 * (d).d_model + 2 * (size_t)(d).d_ff)

static void decode_rows_run(pk_model *m, const int *row, int n, const int32_t *tokens, float *logits, float *buf,
                            int avx2, int first, int total) {
  const pk_dims d = m->d;
  int D = d.d_model, F = d.d_ff, V = d.vocab;
  const float *w = m->params;
  float *x = buf, *ln = x + (size_t)n * D, *qkv = ln + (size_t)n * D;
  float *ao = qkv + (size_t)n * 3 * D, *xm = ao + (size_t)n * D;
  float *fc = xm + (size_t)n * D, *ge = fc + (size_t)n * F;
  for (int i = 0; i < n; ++i) {
    const float *e = w + m->lay.wte + (size_t)tokens[i] * D;
    const float *p = w + m->lay.wpe + (size_t)m->positions[row[i]] * D;
    for (int c = 0; c < D; ++c) x[(size_t)i * D + c] = e[c] + p[c];
  }
  for (int l = 0; l < d.layers; ++l) {
    const pk_layer_offsets *o = &m->lay.layer[l];
    layernorm(x, w + o->ln1_w, w + o->ln1_b, ln, NULL, NULL, n, D, avx2);
    pk_gemm_packed(0, n, 3 * D, D, ln, D, dec_weights(m, l, W_QKV), 0.0f, qkv, 3 * D, w + o->qkv_b);
    for (int i = 0; i < n; ++i) cache_store(m, l, row[i], m->positions[row[i]], qkv + (size_t)i * 3 * D);
    decode_job job = {m, l, n, row, qkv, ao, avx2};
    pk_parallel_for((n * d.heads + DECODE_PAIRS - 1) / DECODE_PAIRS, decode_attention_task, &job);
    memcpy(xm, x, (size_t)n * D * sizeof(float));
    pk_gemm_packed(0, n, D, D, ao, D, dec_weights(m, l, W_PROJ), 1.0f, xm, D, w + o->proj_b);
    layernorm(xm, w + o->ln2_w, w + o->ln2_b, ln, NULL, NULL, n, D, avx2);
    pk_gemm_packed(0, n, F, D, ln, D, dec_weights(m, l, W_FC), 0.0f, fc, F, w + o->fc_b);
    if (n == total) parallel_gelu(fc, ge, (size_t)n * F, GELU_VALUE);
    else gelu_part(fc, ge, (size_t)first * F, (size_t)(first + n) * F, (size_t)total * F, pk_kernel_level());
    memcpy(x, xm, (size_t)n * D * sizeof(float));
    pk_gemm_packed(0, n, D, F, ge, F, dec_weights(m, l, W_FCP), 1.0f, x, D, w + o->fcp_b);
  }
  layernorm(x, w + m->lay.lnf_w, w + m->lay.lnf_b, ln, NULL, NULL, n, D, avx2);
  pk_gemm_packed(0, n, V, D, ln, D, dec_weights(m, d.layers, 0), 0.0f, logits, V, NULL);
  for (int i = 0; i < n; ++i) m->positions[row[i]]++;
}

/* A decoding step's rows split into `parts` (decode_rows_pass). */
typedef struct decode_parts_job {
  pk_model *m;
  const int *row;
  const int32_t *tokens;
  float *logits, *buf;
  int n, parts, avx2;
} decode_parts_job;

/* Part `part`'s rows, in its share of the work space. */
static void decode_part_task(void *ctx, int part) {
  const decode_parts_job *j = ctx;
  int r0 = (int)((long)j->n * part / j->parts), r1 = (int)((long)j->n * (part + 1) / j->parts);
  decode_rows_run(j->m, j->row + r0, r1 - r0, j->tokens + r0, j->logits + (size_t)r0 * j->m->d.vocab,
                  j->buf + (size_t)r0 * DECODE_ROW_FLOATS(j->m->d), j->avx2, r0, j->n);
}

/* Appends tokens[i] to row row[i] of the decoding (i < n, rows going) and
 * writes their next logits [n][V]: only those rows are computed. */
static int decode_rows_pass(pk_model *m, const int *row, int n, const int32_t *tokens, float *logits) {
  const pk_dims d = m->d;
  int V = d.vocab;
  for (int i = 0; i < n; ++i) {
    if (m->positions[row[i]] >= d.max_len) return -3;
    if (tokens[i] < 0 || tokens[i] >= V) return -5;
  }
  if (n == 0) return 0;
  int avx2 = pk_has_avx2_fma();
  size_t need = (size_t)n * DECODE_ROW_FLOATS(d);
  /* Kept between steps: a fresh buffer each step was an mmap, page faults
   * and zeroing (about half a megabyte at 64 rows). */
  if (need > m->decode_cap) {
    free(m->decode_buf);
    m->decode_buf = floats_new(need);
    m->decode_cap = m->decode_buf ? need : 0;
    if (!m->decode_buf) return -1;
  }
  /* At two threads or more the rows are split into parts (16 rows at
   * least) that each run the whole step on one thread: rows do not meet
   * in a decoding step, so the parts exchange nothing, where splitting
   * each product and pass cost 13 fork-joins a step (the reference
   * shape), each handing activations from one core's cache to the
   * other's. The VM's two vCPUs are sometimes on two dies of the host
   * (a cache line's round trip between them ~410 ns instead of ~90):
   * `prism bench grpo`'s generation then took 4.2 ms at two threads (the
   * median of 8 runs), about its time at one, and takes 3.2; with the
   * vCPUs close, 2.8 -> 2.7 ms (52 runs; Documentation/Performance.md).
   * Each part reads all of the weights, which for the reference model
   * (1.6 MB) no longer fit one core's L2, as half of them did. */
  int threads = pk_threads(), parts = n / 16;
  if (parts > threads) parts = threads;
  if (parts > 1) {
    decode_parts_job job = {m, row, tokens, logits, m->decode_buf, n, parts, avx2};
    pk_parallel_solo(parts, decode_part_task, &job);
  } else {
    decode_rows_run(m, row, n, tokens, logits, m->decode_buf, avx2, 0, n);
  }
  return 0;
}

/* Every going row takes its token; finished rows' tokens are ignored and
 * their logits written as 0. */
static int decode_step_pass(pk_model *m, const int32_t *tokens, float *logits) {
  int B = m->dec_rows, V = m->d.vocab, n = 0;
  if (B <= 0) return -2;
  for (int b = 0; b < B; ++b) {
    if (!m->dec_going[b]) continue;
    m->dec_index[n] = b;
    m->dec_tokens[n++] = tokens[b];
  }
  int status = decode_rows_pass(m, m->dec_index, n, m->dec_tokens, logits);
  if (status || n == B) return status;
  /* Spread the n computed rows to their places (row[i] >= i: from the
   * last), finished rows zero. */
  for (int i = n - 1; i >= 0; --i) {
    memmove(logits + (size_t)m->dec_index[i] * V, logits + (size_t)i * V, (size_t)V * sizeof(float));
  }
  for (int b = 0, i = 0; b < B; ++b) {
    if (i < n && m->dec_index[i] == b) ++i;
    else memset(logits + (size_t)b * V, 0, (size_t)V * sizeof(float));
  }
  return 0;
}

/* The listed rows take their tokens; every other row finishes. */
static int decode_step_rows_pass(pk_model *m, const uint32_t *rows, int count, const int32_t *tokens,
                                 float *logits) {
  int B = m->dec_rows;
  if (B <= 0) return -2;
  for (int i = 0; i < count; ++i) {
    if (rows[i] >= (uint32_t)B || !m->dec_going[rows[i]] || (i > 0 && rows[i] <= rows[i - 1])) return -4;
  }
  for (int i = 0; i < count; ++i) m->dec_index[i] = (int)rows[i];
  int status = decode_rows_pass(m, m->dec_index, count, tokens, logits);
  if (status) return status;
  memset(m->dec_going, 0, (size_t)B);
  for (int i = 0; i < count; ++i) m->dec_going[rows[i]] = 1;
  return 0;
}

/* ----------------------------------------------------------------- AdamW */

/* head_w[i][v] = wte[v][i]: the tied head's stored copy. */
static void sync_head(pk_model *m, float *w) {
  int D = m->d.d_model, V = m->d.vocab;
  for (int i = 0; i < D; ++i) {
    for (int v = 0; v < V; ++v) w[m->lay.head_w + (size_t)i * V + v] = w[m->lay.wte + (size_t)v * D + i];
  }
}

typedef struct adam_job {
  pk_model *m;
  /* The same float constants the serial loop used: (float)(1 - beta), not 1 - (float)beta. */
  float clip, lr, beta1, beta2, one_minus_beta1, one_minus_beta2, c1, c2, eps, weight_decay;
  int avx2; /* the caller's kernel choice */
} adam_job;

/* The sum of squares of one chunk of the gradient (four chains: a single
 * chain of dependent double adds was the serial part's bottleneck). */
static void adam_norm_task(void *ctx, int chunk) {
  const adam_job *j = ctx;
  const float *g = j->m->grads;
  size_t P = j->m->lay.total, i = (size_t)chunk * ADAM_CHUNK, end = i + ADAM_CHUNK < P ? i + ADAM_CHUNK : P;
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (; i + 4 <= end; i += 4) {
    s0 += (double)g[i] * g[i];
    s1 += (double)g[i + 1] * g[i + 1];
    s2 += (double)g[i + 2] * g[i + 2];
    s3 += (double)g[i + 3] * g[i + 3];
  }
  for (; i < end; ++i) s0 += (double)g[i] * g[i];
  j->m->adam_partial[chunk] = (s0 + s1) + (s2 + s3);
}

#if defined(__x86_64__)
/* adam_update_task's loop on 8 lanes, for i in [i0, i1) less a tail it
 * returns: the same operations in the same order, separate multiplies and
 * adds (no FMA), so every result is the scalar loop's bit for bit. */
PK_AVX2 static size_t adam_update_avx2(const adam_job *j, size_t i0, size_t i1, float decay) {
  pk_model *m = j->m;
  __m256 clip = _mm256_set1_ps(j->clip), b1 = _mm256_set1_ps(j->beta1), b2 = _mm256_set1_ps(j->beta2);
  __m256 omb1 = _mm256_set1_ps(j->one_minus_beta1), omb2 = _mm256_set1_ps(j->one_minus_beta2);
  __m256 c1 = _mm256_set1_ps(j->c1), c2 = _mm256_set1_ps(j->c2), eps = _mm256_set1_ps(j->eps);
  __m256 lr = _mm256_set1_ps(j->lr), dec = _mm256_set1_ps(decay);
  size_t i = i0;
  for (; i + 8 <= i1; i += 8) {
    __m256 g = _mm256_mul_ps(_mm256_loadu_ps(m->grads + i), clip);
    __m256 mo = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m->adam_m + i)), _mm256_mul_ps(omb1, g));
    __m256 vo = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(m->adam_v + i)), _mm256_mul_ps(_mm256_mul_ps(omb2, g), g));
    _mm256_storeu_ps(m->adam_m + i, mo);
    _mm256_storeu_ps(m->adam_v + i, vo);
    __m256 step = _mm256_div_ps(_mm256_div_ps(mo, c1), _mm256_add_ps(_mm256_sqrt_ps(_mm256_div_ps(vo, c2)), eps));
    __m256 p = _mm256_loadu_ps(m->params + i);
    _mm256_storeu_ps(m->params + i, _mm256_sub_ps(p, _mm256_mul_ps(lr, _mm256_add_ps(step, _mm256_mul_ps(dec, p)))));
  }
  return i;
}
#endif

/* The AdamW update of one chunk, each parameter with its segment's decay;
 * the chunk's gradient is then cleared. */
static void adam_update_task(void *ctx, int chunk) {
  const adam_job *j = ctx;
  pk_model *m = j->m;
  size_t P = m->lay.total, begin = (size_t)chunk * ADAM_CHUNK, end = begin + ADAM_CHUNK < P ? begin + ADAM_CHUNK : P;
  for (int s = 0; s < m->segment_count; ++s) {
    segment seg = m->segments[s];
    size_t i0 = seg.offset > begin ? seg.offset : begin;
    size_t i1 = seg.offset + seg.count < end ? seg.offset + seg.count : end;
    float decay = seg.decay ? j->weight_decay : 0.0f;
#if defined(__x86_64__)
    if (j->avx2 && i0 < i1) i0 = adam_update_avx2(j, i0, i1, decay);
#endif
    for (size_t i = i0; i < i1; ++i) {
      float g = m->grads[i] * j->clip;
      m->adam_m[i] = j->beta1 * m->adam_m[i] + j->one_minus_beta1 * g;
      m->adam_v[i] = j->beta2 * m->adam_v[i] + j->one_minus_beta2 * g * g;
      float mhat = m->adam_m[i] / j->c1;
      float vhat = m->adam_v[i] / j->c2;
      m->params[i] -= j->lr * (mhat / (sqrtf(vhat) + j->eps) + decay * m->params[i]);
    }
  }
  memset(m->grads + begin, 0, (end - begin) * sizeof(float));
}

double pk_adamw(pk_model *m, double lr, double beta1, double beta2, double eps,
                double weight_decay, double max_norm) {
  size_t P = m->lay.total;
  int chunks = (int)((P + ADAM_CHUNK - 1) / ADAM_CHUNK);
  m->kept = 0; /* the weights change */
  adam_job job = {.m = m, .avx2 = pk_has_avx2_fma() && !m->portable};
  pk_parallel_for(chunks, adam_norm_task, &job);
  double sq = 0;
  for (int c = 0; c < chunks; ++c) sq += m->adam_partial[c];
  double norm = sqrt(sq);
  m->step += 1;
  job.clip = (max_norm > 0 && norm > max_norm) ? (float)(max_norm / norm) : 1.0f;
  job.lr = (float)lr, job.beta1 = (float)beta1, job.beta2 = (float)beta2, job.eps = (float)eps;
  job.one_minus_beta1 = (float)(1 - beta1), job.one_minus_beta2 = (float)(1 - beta2);
  job.weight_decay = (float)weight_decay;
  job.c1 = (float)(1.0 - pow(beta1, (double)m->step));
  job.c2 = (float)(1.0 - pow(beta2, (double)m->step));
  pk_parallel_for(chunks, adam_update_task, &job);
  if (m->tied) sync_head(m, m->params);
  return norm;
}

void pk_model_tie_head(pk_model *m, int tied) {
  m->tied = tied != 0;
  if (m->tied) {
    sync_head(m, m->params);
    sync_head(m, m->ref);
  }
}

/* ------------------------------------------------- public passes */

/* A pass one of whose products could not get its scratch memory
 * (pk_gemm_failures counted it since `failures`) returns -1, as one whose
 * attention could not: its results have blocks never computed. A kept
 * pass it made is discarded, and a decoding it began or stepped ends. */
static int checked_pass(pk_model *m, int status, int failures, int decoding) {
  if (status != 0 || pk_gemm_failures() == failures) return status;
  m->kept = 0;
  if (decoding) m->dec_rows = 0;
  return -1;
}

/* Each pass runs on the model's own kernel choice; the calling thread's
 * setting is restored afterwards. */
#define WITH_MODEL_KERNELS(m, decoding, call)                  \
  do {                                                         \
    int previous = pk_force_portable((m)->portable);           \
    int failures = pk_gemm_failures();                         \
    int status = (call);                                       \
    pk_force_portable(previous);                               \
    return checked_pass((m), status, failures, (decoding));    \
  } while (0)

int pk_logits(pk_model *m, const int32_t *tokens, int rows, int stride, float *out) {
  WITH_MODEL_KERNELS(m, 0, logits_pass(m, tokens, rows, stride, out));
}

int pk_logprobs(pk_model *m, int reference, const int32_t *tokens, const uint32_t *lengths,
                int rows, int stride, float temperature, float *out) {
  WITH_MODEL_KERNELS(m, 0, logprobs_pass(m, reference, tokens, lengths, rows, stride, temperature, out));
}

int pk_backward(pk_model *m, const int32_t *tokens, const uint32_t *lengths, int rows, int stride,
                float temperature, const float *grad) {
  WITH_MODEL_KERNELS(m, 0, backward_pass(m, tokens, lengths, rows, stride, temperature, grad));
}

int pk_logprobs_keep(pk_model *m, const int32_t *tokens, const uint32_t *lengths, int rows, int stride,
                     float temperature, float *out) {
  WITH_MODEL_KERNELS(m, 0, logprobs_keep_pass(m, tokens, lengths, rows, stride, temperature, out));
}

int pk_backward_kept(pk_model *m, const float *grad) {
  WITH_MODEL_KERNELS(m, 0, backward_kept_pass(m, grad));
}

int pk_decode_begin(pk_model *m, const int32_t *tokens, const uint32_t *lengths, int rows,
                    int stride, float *logits) {
  WITH_MODEL_KERNELS(m, 1, decode_begin_pass(m, tokens, lengths, rows, stride, logits));
}

int pk_decode_step(pk_model *m, const int32_t *tokens, float *logits) {
  WITH_MODEL_KERNELS(m, 1, decode_step_pass(m, tokens, logits));
}

int pk_decode_step_rows(pk_model *m, const uint32_t *rows, int count, const int32_t *tokens, float *logits) {
  WITH_MODEL_KERNELS(m, 1, decode_step_rows_pass(m, rows, count, tokens, logits));
}
