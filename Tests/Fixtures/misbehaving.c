/* A reward and a judge that misbehave on purpose, one way per build flag,
 * for the isolation and run-safety tests (built with cc at test time):
 *   -DSEGV_ON=N    score (or assess) dereferences NULL on its N-th call
 *   -DHANG_ON=N    score (or assess) never returns from its N-th call (it
 *                  says "misbehaving: hanging" on stderr first)
 *   -DNAN_REWARD   every reward is NaN (not applicable)
 *   -DCRASH_ON_LOAD  a library constructor aborts (dlopen itself crashes)
 * Otherwise: reward 1 and correct when the completion ends with the
 * reference answer after '#', else 0; the judge has no opinion (NaN
 * scores, no first error). */
#include <prism/prism.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int calls = 0;

#ifdef CRASH_ON_LOAD
__attribute__((constructor)) static void crash_on_load(void) { abort(); }
#endif

static void misbehave(void) {
  ++calls;
#ifdef SEGV_ON
  if (calls == SEGV_ON) {
    volatile int *volatile nowhere = NULL;
    *nowhere = 1;
  }
#endif
#ifdef HANG_ON
  if (calls == HANG_ON) {
    fputs("misbehaving: hanging\n", stderr);
    fflush(stderr);
    for (;;) pause();
  }
#endif
}

static prism_status score(void *inst, const prism_reward_sample *samples, size_t count, double *out_reward,
                          uint8_t *out_correct) {
  (void)inst;
  misbehave();
  for (size_t i = 0; i < count; ++i) {
    const prism_str c = samples[i].completion, r = samples[i].reference;
    int hit = c.len > r.len && c.data[c.len - r.len - 1] == '#' && memcmp(c.data + c.len - r.len, r.data, r.len) == 0;
    out_reward[i] = hit ? 1.0 : 0.0;
    out_correct[i] = (uint8_t)hit;
#ifdef NAN_REWARD
    out_reward[i] = NAN;
    out_correct[i] = 0;
#endif
  }
  return PRISM_OK;
}

static prism_status assess(void *inst, const prism_feedback_group *group, double *out_score, int32_t *out_first_error,
                           int32_t *out_disposition) {
  (void)inst;
  (void)group;
  (void)out_score;
  (void)out_first_error;
  misbehave();
  *out_disposition = PRISM_DISPOSITION_KEEP; /* the host pre-filled "no opinion" */
  return PRISM_OK;
}

static const prism_reward_v1 reward = {sizeof(prism_reward_v1), 0, score};
static const prism_feedback_v1 feedback = {sizeof(prism_feedback_v1), 0, assess};

static prism_status create(const prism_host *host, prism_str config, void **out) {
  (void)host;
  (void)config;
  *out = NULL;
  return PRISM_OK;
}
static void destroy(void *inst) { (void)inst; }
static const void *get_interface(void *inst, const char *id) {
  (void)inst;
  if (strcmp(id, PRISM_REWARD_V1_ID) == 0) return &reward;
  if (strcmp(id, PRISM_FEEDBACK_V1_ID) == 0) return &feedback;
  return NULL;
}
static prism_str last_error(void *inst) {
  (void)inst;
  prism_str none = {"", 0};
  return none;
}

static const prism_plugin_entry entry = {
    sizeof(prism_plugin_entry), PRISM_ABI_MAJOR, 0, "org.prism.tests.misbehaving", "Misbehaving", "1.0",
    "A reward and judge that crash, hang or return NaN on purpose", create, destroy, get_interface, last_error};

PRISM_EXPORT const prism_plugin_entry *prism_get_plugin_entry(uint16_t host_abi_major) {
  return host_abi_major == PRISM_ABI_MAJOR ? &entry : NULL;
}
