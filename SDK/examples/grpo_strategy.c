/*
 * grpo_strategy.c — a complete prism.strategy/1 plugin in plain C: GRPO's
 * group-normalised advantages, computed exactly as the built-in `grpo`
 * strategy computes them (Bessel-corrected std, eps 1e-4 added to it, NaN
 * rewards left out of the statistics with advantage 0). Optionally it
 * credits only the first `credit_tokens` tokens of each completion, to show
 * per-token advantages.
 *
 * Build (needs only SDK/include):
 *   cc -std=c11 -shared -fPIC -fvisibility=hidden -I SDK/include \
 *      SDK/examples/grpo_strategy.c -o libgrpo_strategy.so -lm
 * Use:  strategy: {plugin: ./libgrpo_strategy.so, config: {credit_tokens: 0}}
 * Check: prism plugins check ./libgrpo_strategy.so
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <prism/prism.h>

typedef struct instance {
  long credit_tokens; /* 0 = every token gets its completion's advantage */
} instance;

static _Thread_local char create_error[160];

/* The config is a JSON object, "{}" or {"credit_tokens": N} with N >= 0.
 * Anything else is refused (the host's conformance check sends malformed
 * JSON and expects a refusal with a message). */
static int parse_config(const char *json, long *credit_tokens) {
  const char *p = json; /* NUL-terminated copy made by create */
  while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') ++p;
  if (*p++ != '{') return -1;
  while (*p == ' ') ++p;
  if (*p == '}') return 0;
  static const char key[] = "\"credit_tokens\"";
  if (strncmp(p, key, sizeof key - 1) != 0) return -1;
  p += sizeof key - 1;
  while (*p == ' ') ++p;
  if (*p++ != ':') return -1;
  char *end;
  long value = strtol(p, &end, 10);
  if (end == p || value < 0) return -1;
  p = end;
  while (*p == ' ') ++p;
  if (*p != '}') return -1;
  *credit_tokens = value;
  return 0;
}

static prism_status create(const prism_host *host, prism_str config_json, void **out_instance) {
  (void)host;
  char text[256];
  long credit_tokens = 0;
  if (config_json.len >= sizeof text) {
    snprintf(create_error, sizeof create_error, "config: longer than %zu bytes", sizeof text - 1);
    return PRISM_E_CONFIG;
  }
  memcpy(text, config_json.data ? config_json.data : "", config_json.len);
  text[config_json.len] = '\0';
  if (parse_config(text, &credit_tokens) != 0) {
    snprintf(create_error, sizeof create_error,
             "config: expected {} or {\"credit_tokens\": N} with N >= 0");
    return PRISM_E_CONFIG;
  }
  instance *self = calloc(1, sizeof *self);
  if (!self) return PRISM_E_OUT_OF_MEMORY;
  self->credit_tokens = credit_tokens;
  *out_instance = self;
  return PRISM_OK;
}

static void destroy(void *self) { free(self); }

/* No call of an instance fails, so only `create` has something to say. */
static prism_str last_error(void *self) {
  const char *message = self ? "" : create_error;
  prism_str out = {message, strlen(message)};
  return out;
}

/* Advantages of one group, the built-in way. */
static void group_advantages(const prism_strategy_group *g, double *out) {
  uint32_t n = 0;
  double sum = 0, low = INFINITY, high = -INFINITY;
  for (uint32_t i = 0; i < g->count; ++i) {
    double r = g->rewards[i];
    if (isnan(r)) continue;
    ++n;
    sum += r;
    if (r < low) low = r;
    if (r > high) high = r;
  }
  double mean = n == 0 ? 0 : low == high ? low : sum / n;
  double squares = 0;
  for (uint32_t i = 0; i < g->count; ++i) {
    double r = g->rewards[i];
    if (!isnan(r)) squares += (r - mean) * (r - mean);
  }
  double divisor = (n > 1 ? sqrt(squares / (n - 1)) : 0) + 1e-4;
  for (uint32_t i = 0; i < g->count; ++i) {
    out[i] = isnan(g->rewards[i]) ? 0 : (g->rewards[i] - mean) / divisor;
  }
}

static prism_status advantages(void *self, const prism_strategy_group *groups, uint32_t group_count,
                               const prism_strategy_output *out) {
  const instance *inst = self;
  size_t response = 0, token = 0;
  for (uint32_t g = 0; g < group_count; ++g) {
    group_advantages(&groups[g], out->advantages + response);
    for (uint32_t i = 0; i < groups[g].count; ++i) {
      uint32_t tokens = groups[g].token_counts[i];
      if (inst->credit_tokens > 0) {
        for (uint32_t t = 0; t < tokens; ++t) {
          out->token_advantages[token + t] = t < inst->credit_tokens ? out->advantages[response + i] : 0;
        }
      }
      token += tokens;
    }
    response += groups[g].count;
  }
  return PRISM_OK;
}

static const prism_strategy_v1 strategy = {
    .struct_size = sizeof(prism_strategy_v1),
    .flags = 0, /* no judge needed */
    .wants_feedback = NULL,
    .dispose = NULL,
    .advantages = advantages,
};

static const void *get_interface(void *self, const char *id) {
  (void)self;
  return strcmp(id, PRISM_STRATEGY_V1_ID) == 0 ? &strategy : NULL;
}

static const prism_plugin_entry entry = {
    .struct_size = sizeof(prism_plugin_entry),
    .abi_major = PRISM_ABI_MAJOR,
    .abi_minor = PRISM_ABI_MINOR,
    .id = "org.example.grpo-strategy",
    .name = "GRPO strategy (C example)",
    .version = "1.0.0",
    .description = "GRPO advantages as the built-in grpo strategy computes them",
    .create = create,
    .destroy = destroy,
    .get_interface = get_interface,
    .last_error = last_error,
};

PRISM_EXPORT const prism_plugin_entry *prism_get_plugin_entry(uint16_t host_abi_major) {
  return host_abi_major == PRISM_ABI_MAJOR ? &entry : NULL;
}
