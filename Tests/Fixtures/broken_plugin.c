/* A deliberately broken plugin, one way per build flag. The host tests build
 * it with cc at test time, once per -D, and check the exact error:
 *   -DNO_ENTRY            exports no prism_get_plugin_entry
 *   -DENTRY_NULL          the entry returns NULL
 *   -DABI_MAJOR_2         claims ABI 2.0
 *   -DTOO_SMALL           struct_size covers only the first fields
 *   -DNO_CREATE           create is NULL
 *   -DNO_REWARD           provides no interface at all
 *   -DCREATE_FAILS        create fails with a message
 *   -DBAD_OUTPUT          score returns +inf and a correct flag of 7
 *   -DSMALL_TABLE         the reward table's struct_size is 4
 *   -DNULL_SCORE          the reward table's score is NULL
 * With no flag it is a valid reward plugin (reward = completion length). */
#include <prism/prism.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

static prism_status score(void *inst, const prism_reward_sample *samples,
                          size_t count, double *out_reward,
                          uint8_t *out_correct) {
  (void)inst;
  for (size_t i = 0; i < count; ++i) {
    out_reward[i] = (double)samples[i].completion.len;
    out_correct[i] = samples[i].completion.len > 0;
#ifdef BAD_OUTPUT
    out_reward[i] = i == 0 ? INFINITY : 1.0;
    out_correct[i] = i == 0 ? 0 : 7;
#endif
  }
  return PRISM_OK;
}

static prism_reward_v1 reward = {sizeof(prism_reward_v1), 0, score};

static prism_status create(const prism_host *host, prism_str config,
                           void **out) {
  (void)host;
  (void)config;
#ifdef CREATE_FAILS
  (void)out;
  return PRISM_E_CONFIG;
#else
  *out = malloc(1);
  return PRISM_OK;
#endif
}

static void destroy(void *inst) { free(inst); }

static const void *get_interface(void *inst, const char *id) {
  (void)inst;
#ifdef NO_REWARD
  (void)id;
  (void)reward;
  return NULL;
#else
  return strcmp(id, PRISM_REWARD_V1_ID) == 0 ? &reward : NULL;
#endif
}

static prism_str last_error(void *inst) {
  const char *message = inst ? "" : "the fixture refuses every config";
  prism_str s = {message, strlen(message)};
  return s;
}

static prism_plugin_entry entry = {
    sizeof(prism_plugin_entry), PRISM_ABI_MAJOR, PRISM_ABI_MINOR,
    "org.prism.test.fixture", "Fixture", "0.0.1", "A test fixture.",
    create, destroy, get_interface, last_error};

#ifndef NO_ENTRY
PRISM_EXPORT const prism_plugin_entry *prism_get_plugin_entry(uint16_t major) {
  (void)major;
#if defined(ABI_MAJOR_2)
  entry.abi_major = 2;
#elif defined(TOO_SMALL)
  entry.struct_size = 16;
#elif defined(NO_CREATE)
  memset(&entry.create, 0, sizeof entry.create);
#elif defined(SMALL_TABLE)
  reward.struct_size = 4;
#elif defined(NULL_SCORE)
  memset(&reward.score, 0, sizeof reward.score);
#endif
#ifdef ENTRY_NULL
  (void)entry;
  return NULL;
#else
  return &entry;
#endif
}
#else
PRISM_EXPORT int some_other_symbol(void) { return (int)sizeof entry; }
#endif
