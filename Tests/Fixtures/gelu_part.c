/* gelu_part (model.c) against the GELU pass it stands in for: elements
 * [a, b) of a pass over `total` elements must get the bits
 * parallel_gelu(x, y, total) gives them, for every piece of a split of the
 * elements into parts (decoding splits a step's rows so: each part runs
 * the step's GELU on its rows alone). Totals below 16384 (one chunk) and
 * above (8 chunks, whose lengths need not be multiples of 8), parts cut at
 * arbitrary elements and at row boundaries; AVX-512, AVX2 and portable
 * forms. The vector forms and the portable one differ in 1-3.5% of
 * values between -2 and 2, so the same splits run through plain gelu must differ
 * from the whole pass somewhere: else the data would not tell the forms
 * apart and the check would prove nothing. Exit 0 and "gelu parts agreed
 * (N pieces)", or 1 naming the first disagreement.
 *
 *   gelu_part
 *
 * model.c is included, not linked: gelu_part is static. */
#include "model.c"

#include <stdio.h>

static unsigned state = 2024;
static float uniform(void) {
  state = state * 1664525u + 1013904223u;
  return (float)(state >> 8) / 16777216.0f * 2.0f - 1.0f;
}

int main(void) {
  static const size_t totals[] = {100, 3400, 7000, 16383, 16384, 18000, 20001};
  static const size_t cuts[][4] = {{1, 2}, {1, 3}, {5, 7}, {17, 70}, {23, 70}, {1, 1000}}; /* a/b of the total */
  int pieces = 0;
  long naive_differ = 0;
  for (size_t t = 0; t < sizeof totals / sizeof totals[0]; ++t) {
    size_t total = totals[t];
    float *x = malloc(total * sizeof(float)), *whole = malloc(total * sizeof(float));
    float *part = malloc(total * sizeof(float)), *naive = malloc(total * sizeof(float));
    if (!x || !whole || !part || !naive) {
      fprintf(stderr, "out of memory\n");
      return 2;
    }
    for (size_t i = 0; i < total; ++i) x[i] = uniform();
    for (int level = 0; level <= pk_has_avx2_fma() + pk_has_avx512(); ++level) {
      int portable = pk_force_portable(level == 0), avx2 = pk_force_avx2(level == 1);
      parallel_gelu(x, whole, total, GELU_VALUE);
      pk_force_portable(portable), pk_force_avx2(avx2);
      for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; ++c) {
        /* Parts [0, cut), [cut, 2 cut) ... [k cut, total). */
        size_t cut = total * cuts[c][0] / cuts[c][1];
        if (cut == 0) cut = 1;
        for (size_t a = 0; a < total; a += cut) {
          size_t b = a + cut < total ? a + cut : total;
          gelu_part(x + a, part + a, a, b, total, level);
          gelu(x + a, naive + a, b - a, level);
          ++pieces;
        }
        if (memcmp(part, whole, total * sizeof(float)) != 0) {
          size_t i = 0;
          while (memcmp(part + i, whole + i, sizeof(float)) == 0) ++i;
          printf("total %zu, parts of %zu, kernel level %d: element %zu differs\n", total, cut, level, i);
          return 1;
        }
        for (size_t i = 0; i < total; ++i) naive_differ += memcmp(naive + i, whole + i, sizeof(float)) != 0;
      }
    }
    free(x), free(whole), free(part), free(naive);
  }
  if (pk_has_avx2_fma() && naive_differ == 0) {
    printf("the parts run as passes of their own gave the whole pass's bits too: the data tells nothing\n");
    return 1;
  }
  printf("gelu parts agreed (%d pieces; %ld elements differ when each part is a pass of its own)\n", pieces,
         naive_differ);
  return 0;
}
