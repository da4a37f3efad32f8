/*
 * exact_answer.c — the exact-final-answer reward, a Prism plugin in plain C.
 *
 * It needs nothing but the SDK header:
 *   cc -shared -fPIC -fvisibility=hidden -I SDK/include \
 *      Plugins/ExactAnswer/exact_answer.c -o libPrismExactAnswer.so
 *
 * Interface: prism.reward/1. Reward 1 (correct_reward) when the completion's
 * final answer equals the reference, else 0 (incorrect_reward); NaN when the
 * sample has no reference. Matching rules: logic/include/exact_answer_logic.h.
 *
 * With "verify": "process" the reward is 1 only when the completion is the
 * whole worked solution of an arithmetic-chain prompt ("12+34+7=") and
 * nothing else: "12+34=46;46+7=53;#53" (whitespace around it ignored), every
 * step right, nothing after the answer. A prompt that is not such a chain
 * gets NaN (not applicable) in that mode.
 *
 * Config (JSON object, every key optional):
 *   "verify"            "final_answer" (default) or "process"
 *   "marker"            string of 1-15 bytes, default "#" ("Answer:" for
 *                       the word problems)
 *   "require_marker"    bool, default false
 *   "correct_reward"    number, default 1
 *   "incorrect_reward"  number, default 0
 */
#include <prism/prism.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logic/include/exact_answer_logic.h"

typedef struct exact_answer {
  int process; /* "verify": "process" */
  char marker[16]; /* NUL-terminated */
  int require_marker;
  double correct_reward;
  double incorrect_reward;
  char error[256];
} exact_answer;

/* The reason the last `create` on this thread failed. */
static _Thread_local char create_error[256];

/* ------------------------------------------------------------------ config */

/* A minimal reader for a flat JSON object whose values are strings, numbers,
 * booleans or null. Enough for plugin configs; nested values are refused. */
typedef struct json_reader {
  const char *start;
  const char *p;
  const char *end;
  char *error;
  size_t error_size;
} json_reader;

static void json_skip_space(json_reader *r) {
  while (r->p < r->end && ea_is_space(*r->p)) r->p++;
}

static int json_fail(json_reader *r, const char *what) {
  snprintf(r->error, r->error_size, "config: %s at byte %ld", what,
           (long)(r->p - r->start));
  return 0;
}

/* Reads a string without escapes beyond \" and \\ into buf. */
static int json_string(json_reader *r, char *buf, size_t size) {
  size_t n = 0;
  if (r->p >= r->end || *r->p != '"') return json_fail(r, "expected a string");
  r->p++;
  while (r->p < r->end && *r->p != '"') {
    char c = *r->p++;
    if (c == '\\') {
      if (r->p >= r->end) break;
      c = *r->p++;
      if (c != '"' && c != '\\' && c != '/') {
        return json_fail(r, "unsupported escape in string");
      }
    }
    if (n + 1 >= size) return json_fail(r, "string too long");
    buf[n++] = c;
  }
  if (r->p >= r->end) return json_fail(r, "unterminated string");
  r->p++;
  buf[n] = '\0';
  return 1;
}

static int parse_config(exact_answer *ea, prism_str config, char *error,
                        size_t error_size) {
  const char *text = config.data ? config.data : "";
  json_reader r = {text, text, text + config.len, error, error_size};
  json_skip_space(&r);
  if (r.p == r.end) return 1; /* empty config = defaults */
  if (*r.p != '{') return json_fail(&r, "expected a JSON object");
  r.p++;
  json_skip_space(&r);
  if (r.p < r.end && *r.p == '}') {
    r.p++;
    return 1;
  }
  for (;;) {
    char key[64];
    json_skip_space(&r);
    if (!json_string(&r, key, sizeof key)) return 0;
    json_skip_space(&r);
    if (r.p >= r.end || *r.p != ':') return json_fail(&r, "expected ':'");
    r.p++;
    json_skip_space(&r);
    if (strcmp(key, "verify") == 0) {
      char value[32];
      if (!json_string(&r, value, sizeof value)) return 0;
      if (strcmp(value, "final_answer") == 0) {
        ea->process = 0;
      } else if (strcmp(value, "process") == 0) {
        ea->process = 1;
      } else {
        snprintf(error, error_size,
                 "config key 'verify': expected \"final_answer\" or "
                 "\"process\", got \"%s\"", value);
        return 0;
      }
    } else if (strcmp(key, "marker") == 0) {
      char value[64];
      if (!json_string(&r, value, sizeof value)) return 0;
      if (strlen(value) == 0 || strlen(value) >= sizeof ea->marker) {
        snprintf(error, error_size,
                 "config key 'marker': expected a string of 1 to %zu bytes, "
                 "got \"%s\"", sizeof ea->marker - 1, value);
        return 0;
      }
      memcpy(ea->marker, value, strlen(value) + 1);
    } else if (strcmp(key, "require_marker") == 0) {
      if ((size_t)(r.end - r.p) >= 4 && memcmp(r.p, "true", 4) == 0) {
        ea->require_marker = 1;
        r.p += 4;
      } else if ((size_t)(r.end - r.p) >= 5 && memcmp(r.p, "false", 5) == 0) {
        ea->require_marker = 0;
        r.p += 5;
      } else {
        snprintf(error, error_size,
                 "config key 'require_marker': expected true or false");
        return 0;
      }
    } else if (strcmp(key, "correct_reward") == 0 ||
               strcmp(key, "incorrect_reward") == 0) {
      char number[64];
      size_t n = 0;
      while (r.p < r.end && n + 1 < sizeof number &&
             strchr("+-0123456789.eE", *r.p) != NULL) {
        number[n++] = *r.p++;
      }
      number[n] = '\0';
      char *stop = NULL;
      double value = strtod(number, &stop);
      if (n == 0 || *stop != '\0' || !isfinite(value)) {
        snprintf(error, error_size,
                 "config key '%s': expected a finite number", key);
        return 0;
      }
      if (key[0] == 'c') {
        ea->correct_reward = value;
      } else {
        ea->incorrect_reward = value;
      }
    } else {
      snprintf(error, error_size,
               "config: unknown key '%s' (expected verify, marker, "
               "require_marker, correct_reward, incorrect_reward)", key);
      return 0;
    }
    json_skip_space(&r);
    if (r.p < r.end && *r.p == ',') {
      r.p++;
      continue;
    }
    if (r.p < r.end && *r.p == '}') {
      r.p++;
      break;
    }
    return json_fail(&r, "expected ',' or '}'");
  }
  json_skip_space(&r);
  if (r.p != r.end) return json_fail(&r, "trailing characters after object");
  return 1;
}

/* ------------------------------------------------------ process-verified */

enum { MAX_TERMS = 64, SOLUTION_SIZE = 2048 };

/* Writes the worked solution of the chain prompt `p` ("12+34-7=", spaces
 * allowed; evaluated left to right) into `out`, e.g. "12+34=46;46-7=39;#39".
 * Returns 0 when the prompt is not such a chain or a value overflows. */
static int chain_solution(const char *p, size_t n, const char *marker, char *out,
                          size_t size) {
  long long terms[MAX_TERMS];
  char ops[MAX_TERMS];
  int count = 0;
  size_t i = 0;
  for (;;) {
    while (i < n && ea_is_space(p[i])) i++;
    int negative = 0;
    if (count == 0 && i < n && (p[i] == '-' || p[i] == '+')) negative = p[i++] == '-';
    if (i >= n || !ea_is_digit(p[i]) || count == MAX_TERMS) return 0;
    long long v = 0;
    for (; i < n && ea_is_digit(p[i]); ++i) {
      if (__builtin_mul_overflow(v, 10, &v) ||
          __builtin_add_overflow(v, p[i] - '0', &v)) {
        return 0;
      }
    }
    terms[count] = negative ? -v : v;
    while (i < n && ea_is_space(p[i])) i++;
    if (i < n && (p[i] == '+' || p[i] == '-' || p[i] == '*')) {
      ops[count++] = p[i++];
      continue;
    }
    count++;
    if (i < n && p[i] == '=') i++;
    while (i < n && ea_is_space(p[i])) i++;
    if (i != n || count < 2) return 0;
    break;
  }
  size_t used = 0;
  long long value = terms[0];
  for (int k = 0; k + 1 < count; ++k) {
    long long next;
    int overflow = ops[k] == '+'   ? __builtin_add_overflow(value, terms[k + 1], &next)
                   : ops[k] == '-' ? __builtin_sub_overflow(value, terms[k + 1], &next)
                                   : __builtin_mul_overflow(value, terms[k + 1], &next);
    if (overflow) return 0;
    int w = snprintf(out + used, size - used, "%lld%c%lld=%lld;", value, ops[k],
                     terms[k + 1], next);
    if (w < 0 || (size_t)w >= size - used) return 0;
    used += (size_t)w;
    value = next;
  }
  int w = snprintf(out + used, size - used, "%s%lld", marker, value);
  return w >= 0 && (size_t)w < size - used;
}

/* Whether `completion`, trimmed of surrounding whitespace, is exactly the
 * worked solution `solution`. */
static int is_solution(const char *completion, size_t n, const char *solution) {
  while (n > 0 && ea_is_space(completion[0])) {
    completion++;
    n--;
  }
  while (n > 0 && ea_is_space(completion[n - 1])) n--;
  return n == strlen(solution) && memcmp(completion, solution, n) == 0;
}

/* --------------------------------------------------------------- reward/1 */

static prism_status ea_score(void *instance, const prism_reward_sample *samples,
                             size_t count, double *out_reward,
                             uint8_t *out_correct) {
  const exact_answer *ea = (const exact_answer *)instance;
  for (size_t i = 0; i < count; ++i) {
    const prism_reward_sample *s = &samples[i];
    if (s->reference.len == 0) {
      out_reward[i] = NAN; /* nothing to compare with: not applicable */
      out_correct[i] = 0;
      continue;
    }
    const char *completion = s->completion.data ? s->completion.data : "";
    int ok = ea_matches(completion, s->completion.len, s->reference.data,
                        s->reference.len, ea->marker, strlen(ea->marker),
                        ea->require_marker);
    if (ea->process) {
      char solution[SOLUTION_SIZE];
      if (!chain_solution(s->prompt.data ? s->prompt.data : "", s->prompt.len,
                          ea->marker, solution, sizeof solution)) {
        out_reward[i] = NAN; /* not a chain: process verification does not apply */
        out_correct[i] = 0;
        continue;
      }
      ok = ok && is_solution(completion, s->completion.len, solution);
    }
    out_reward[i] = ok ? ea->correct_reward : ea->incorrect_reward;
    out_correct[i] = (uint8_t)ok;
  }
  return PRISM_OK;
}

/* The default rule (marker "#", not required) as a bare C function, for
 * `reward.function` through libffi (no instance, no config):
 *   {library: libPrismExactAnswer.so, symbol: prism_exact_answer_match, signature: "d(bb)"}
 * 1 when the completion's final answer equals the reference, else 0; NaN
 * when the reference is empty. `prism bench abi` compares it with reward/1. */
PRISM_EXPORT double prism_exact_answer_match(const char *completion, size_t completion_len,
                                             const char *reference, size_t reference_len) {
  if (reference_len == 0) return NAN;
  return ea_matches(completion ? completion : "", completion_len, reference, reference_len, "#", 1, 0) ? 1.0 : 0.0;
}

static const prism_reward_v1 reward_table = {
    sizeof(prism_reward_v1),
    0,
    ea_score,
};

/* ------------------------------------------------------------------- entry */

static prism_status ea_create(const prism_host *host, prism_str config,
                              void **out_instance) {
  (void)host;
  exact_answer *ea = (exact_answer *)calloc(1, sizeof *ea);
  if (ea == NULL) {
    snprintf(create_error, sizeof create_error, "out of memory");
    return PRISM_E_OUT_OF_MEMORY;
  }
  ea->marker[0] = '#';
  ea->correct_reward = 1.0;
  ea->incorrect_reward = 0.0;
  if (!parse_config(ea, config, create_error, sizeof create_error)) {
    free(ea);
    return PRISM_E_CONFIG;
  }
  *out_instance = ea;
  return PRISM_OK;
}

static void ea_destroy(void *instance) { free(instance); }

static const void *ea_get_interface(void *instance, const char *id) {
  (void)instance;
  if (strcmp(id, PRISM_REWARD_V1_ID) == 0) return &reward_table;
  return NULL;
}

static prism_str ea_last_error(void *instance) {
  const char *message =
      instance ? ((exact_answer *)instance)->error : create_error;
  prism_str s = {message, strlen(message)};
  return s;
}

static const prism_plugin_entry entry = {
    sizeof(prism_plugin_entry),
    PRISM_ABI_MAJOR,
    PRISM_ABI_MINOR,
    "org.prism.exact-answer",
    "Exact final answer",
    "1.0.0",
    "Reward 1 when the final answer after '#' equals the reference "
    "(whitespace, leading zeros and huge integers handled), else 0.",
    ea_create,
    ea_destroy,
    ea_get_interface,
    ea_last_error,
};

PRISM_EXPORT const prism_plugin_entry *prism_get_plugin_entry(
    uint16_t host_abi_major) {
  return host_abi_major == PRISM_ABI_MAJOR ? &entry : NULL;
}
