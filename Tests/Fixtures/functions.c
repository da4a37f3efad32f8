/* Bare C functions (no Prism header, no entry table) used as rewards and
 * judges through libffi by the function-plugin tests, one per signature:
 *
 *   d(ss)  answer_reward(completion, reference): 1 when the completion ends
 *          with "#" + reference, else 0.25 (so a run shows it was used)
 *   i(bb)  answer_reward_i(completion, n, reference, n): 1 or 0, same rule
 *   f(s)   length_reward(completion): the length / 100
 *   l(bs)  echo_length(completion, n, reference): the completion's length
 *          in bytes, read from the buffer's size (for the buffer test)
 *   d(ssss) all_texts(completion, reference, prompt, metadata): 1 when the
 *          four texts are "c", "r", "p" and "{}" (the argument order test)
 *   i(s)   chain_judge(completion): the first step "a+b=c" of the
 *          ';'-separated chain whose sum is wrong (-1: none); the step after
 *          the last '=' step ("#N") is right when N is the last sum
 *   l(s)   out_of_range_judge(completion): 99 (a broken judge)
 *   d(s)   infinite_reward(completion): +inf (a broken reward)
 */
#include <math.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int ends_with_answer(const char *c, size_t n, const char *r, size_t rn) {
  if (rn == 0 || n < rn + 1) return 0;
  return c[n - rn - 1] == '#' && memcmp(c + n - rn, r, rn) == 0;
}

double answer_reward(const char *completion, const char *reference) {
  return ends_with_answer(completion, strlen(completion), reference, strlen(reference)) ? 1.0 : 0.25;
}

int32_t answer_reward_i(const uint8_t *completion, size_t n, const uint8_t *reference, size_t rn) {
  return ends_with_answer((const char *)completion, n, (const char *)reference, rn);
}

float length_reward(const char *completion) { return (float)strlen(completion) / 100.0f; }

int64_t echo_length(const uint8_t *completion, size_t n, const char *reference) {
  (void)completion;
  (void)reference;
  return (int64_t)n;
}

double all_texts(const char *c, const char *r, const char *p, const char *m) {
  return strcmp(c, "c") == 0 && strcmp(r, "r") == 0 && strcmp(p, "p") == 0 && strcmp(m, "{}") == 0 ? 1.0 : 0.0;
}

int32_t chain_judge(const char *completion) {
  int32_t index = 0;
  long last = 0;
  const char *p = completion;
  while (*p) {
    const char *end = strchr(p, ';');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char step[64];
    if (len >= sizeof step) return index;
    memcpy(step, p, len);
    step[len] = 0;
    long a, b, c;
    char tail;
    if (sscanf(step, "%ld+%ld=%ld%c", &a, &b, &c, &tail) == 3) {
      if (a + b != c) return index;
      last = c;
    } else if (step[0] == '#') {
      char *rest;
      long n = strtol(step + 1, &rest, 10);
      if (*rest != 0 || rest == step + 1 || n != last) return index;
    } else if (len > 0) {
      return index;
    }
    if (len > 0) index++;
    if (!end) break;
    p = end + 1;
  }
  return -1;
}

int64_t out_of_range_judge(const char *completion) {
  (void)completion;
  return 99;
}

double infinite_reward(const char *completion) {
  (void)completion;
  return INFINITY;
}
