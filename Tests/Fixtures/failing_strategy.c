/* A prism.strategy/1 plugin that fails on purpose, one way per define:
 *   FAIL_WANTS       wants_feedback fails
 *   FAIL_DISPOSE     dispose fails
 *   FAIL_ADVANTAGES  advantages fails
 *   INF_ADVANTAGE    advantages writes +infinity
 * Otherwise every advantage is -1 (a signal in every group). */
#include <math.h>
#include <prism/prism.h>
#include <string.h>

static prism_status wants(void *inst, const prism_strategy_group *g, uint8_t *out) {
  (void)inst, (void)g;
#ifdef FAIL_WANTS
  (void)out;
  return PRISM_E_INTERNAL;
#else
  *out = 1;
  return PRISM_OK;
#endif
}

static prism_status dispose(void *inst, const prism_strategy_group *g, int32_t *out) {
  (void)inst, (void)g, (void)out;
#ifdef FAIL_DISPOSE
  return PRISM_E_INTERNAL;
#else
  return PRISM_OK;
#endif
}

static prism_status advantages(void *inst, const prism_strategy_group *groups, uint32_t n,
                               const prism_strategy_output *out) {
  (void)inst;
#ifdef FAIL_ADVANTAGES
  (void)groups, (void)n, (void)out;
  return PRISM_E_INTERNAL;
#else
  size_t k = 0;
  for (uint32_t g = 0; g < n; ++g) {
    for (uint32_t i = 0; i < groups[g].count; ++i) out->advantages[k++] = -1;
  }
#ifdef INF_ADVANTAGE
  if (k > 0) out->advantages[0] = INFINITY;
#endif
  return PRISM_OK;
#endif
}

static const prism_strategy_v1 strategy = {sizeof strategy, 0, wants, dispose, advantages};

static prism_status create(const prism_host *h, prism_str cfg, void **out) {
  (void)h, (void)cfg;
  *out = NULL;
  return PRISM_OK;
}
static void destroy(void *inst) { (void)inst; }
static const void *get_interface(void *inst, const char *id) {
  (void)inst;
  return strcmp(id, PRISM_STRATEGY_V1_ID) == 0 ? &strategy : NULL;
}
/* create never fails, so every call's failure has this message. */
static prism_str last_error(void *inst) {
  static const char message[] = "failing on purpose";
  (void)inst;
  prism_str s = {message, sizeof message - 1};
  return s;
}

static const prism_plugin_entry entry = {
    sizeof entry, PRISM_ABI_MAJOR, PRISM_ABI_MINOR, "org.prism.test.failing-strategy", "Failing strategy",
    "1.0.0", "fails on purpose", create, destroy, get_interface, last_error};

PRISM_EXPORT const prism_plugin_entry *prism_get_plugin_entry(uint16_t major) {
  return major == PRISM_ABI_MAJOR ? &entry : NULL;
}
