/*
 * exact_answer_logic.h — the matching rules of the exact-final-answer reward,
 * as pure static inline C so that the plugin (exact_answer.c) and the ABI
 * benchmark call the very same code.
 *
 * Rules (see Documentation/Plugins.md):
 *  1. The final answer is the text after the last answer marker ('#' by
 *     default; any string, e.g. "Answer:") that is followed by something
 *     other than whitespace; it runs to the next marker or the end.
 *     Repeated markers ("##53", "#53#") are therefore harmless.
 *  2. With no marker: if markers are required the answer is missing (wrong);
 *     otherwise the last integer in the text is the answer.
 *  3. The answer is trimmed of whitespace and of trailing '.', ';', ','.
 *  4. If the reference is an integer (optional sign, digits, surrounding
 *     whitespace), the answer must be an integer of the same value: leading
 *     zeros, a '+' sign and "-0" are normalised, and numbers of any length are
 *     compared digit by digit (no overflow). Otherwise the trimmed strings
 *     must be equal byte for byte.
 */
#ifndef PRISM_EXACT_ANSWER_LOGIC_H
#define PRISM_EXACT_ANSWER_LOGIC_H

#include <stddef.h>
#include <string.h>

typedef struct ea_span {
  const char *p;
  size_t n;
} ea_span;

static inline int ea_is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

static inline int ea_is_digit(char c) { return c >= '0' && c <= '9'; }

static inline ea_span ea_trim(ea_span s) {
  while (s.n > 0 && ea_is_space(s.p[0])) {
    s.p++;
    s.n--;
  }
  while (s.n > 0 && (ea_is_space(s.p[s.n - 1]) || s.p[s.n - 1] == '.' ||
                     s.p[s.n - 1] == ';' || s.p[s.n - 1] == ',')) {
    s.n--;
  }
  return s;
}

/* A canonical integer: sign (1 or -1) and digits without leading zeros
 * (at least one digit; zero is "0" with sign 1). Returns 0 if `s` is not an
 * integer. */
static inline int ea_parse_integer(ea_span s, int *sign, ea_span *digits) {
  size_t i = 0;
  *sign = 1;
  if (s.n == 0) return 0;
  if (s.p[0] == '+' || s.p[0] == '-') {
    if (s.p[0] == '-') *sign = -1;
    i = 1;
  }
  if (i == s.n) return 0;
  for (size_t j = i; j < s.n; ++j) {
    if (!ea_is_digit(s.p[j])) return 0;
  }
  while (i + 1 < s.n && s.p[i] == '0') i++;
  digits->p = s.p + i;
  digits->n = s.n - i;
  if (digits->n == 1 && digits->p[0] == '0') *sign = 1;
  return 1;
}

/* The final answer in a completion (rules 1–3). Returns 0 if there is none. */
static inline int ea_extract_answer(const char *text, size_t len,
                                    const char *marker, size_t marker_len,
                                    int require_marker, ea_span *out) {
  size_t end = len;
  int saw_marker = 0;
  /* k is where a marker would end: text[k - marker_len, k). */
  for (size_t k = len; marker_len > 0 && k >= marker_len; --k) {
    if (k > end || memcmp(text + k - marker_len, marker, marker_len) != 0) {
      continue;
    }
    saw_marker = 1;
    ea_span candidate = {text + k, end - k};
    candidate = ea_trim(candidate);
    if (candidate.n > 0) {
      *out = candidate;
      return 1;
    }
    end = k - marker_len;
  }
  if (saw_marker || require_marker) return 0;
  /* No marker at all: the last integer in the text. */
  size_t k = len;
  while (k > 0 && !ea_is_digit(text[k - 1])) k--;
  if (k == 0) return 0;
  size_t stop = k;
  while (k > 0 && ea_is_digit(text[k - 1])) k--;
  if (k > 0 && text[k - 1] == '-') k--;
  out->p = text + k;
  out->n = stop - k;
  return 1;
}

/* 1 if the completion's final answer equals the reference (rule 4). */
static inline int ea_matches(const char *completion, size_t completion_len,
                             const char *reference, size_t reference_len,
                             const char *marker, size_t marker_len,
                             int require_marker) {
  ea_span answer;
  if (!ea_extract_answer(completion, completion_len, marker, marker_len,
                         require_marker, &answer)) {
    return 0;
  }
  ea_span ref = {reference, reference_len};
  ref = ea_trim(ref);
  int ref_sign, answer_sign;
  ea_span ref_digits, answer_digits;
  if (ea_parse_integer(ref, &ref_sign, &ref_digits)) {
    if (!ea_parse_integer(answer, &answer_sign, &answer_digits)) return 0;
    return ref_sign == answer_sign && ref_digits.n == answer_digits.n &&
           memcmp(ref_digits.p, answer_digits.p, ref_digits.n) == 0;
  }
  return ref.n == answer.n && (ref.n == 0 || memcmp(ref.p, answer.p, ref.n) == 0);
}

#endif /* PRISM_EXACT_ANSWER_LOGIC_H */
