/* Exercises libPrismEmbed.so from C for the embedding tests, writing what
 * it saw to a report file (never to stdout or stderr: the test checks that
 * both stay empty, i.e. that the library prints nothing on its own).
 *
 *   embed_probe LIBRARY CONFIG.yaml RUN_DIR REPORT BAD_PLUGIN_CONFIG.yaml
 *
 * It records every signal's disposition, dlopens the library (so its
 * constructors run after the record), trains, evaluates, scores, judges,
 * provokes errors (an invalid config, a missing plugin, a plugin whose
 * create fails) and cancels; then compares the dispositions. Report lines:
 *   <what>\t<status>\t<message or JSON>
 * and last "signals\tunchanged" or "signals\tchanged <numbers>". Exits 0
 * when it got that far. */
#define _GNU_SOURCE
#include <prism/embed.h>

#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API(name) static __typeof__(name) *p_##name;
API(prism_config_load)
API(prism_config_parse)
API(prism_config_set)
API(prism_config_free)
API(prism_error_message)
API(prism_error_code)
API(prism_error_free)
API(prism_string_free)
API(prism_run_create)
API(prism_run_steps)
API(prism_run_evaluate)
API(prism_run_cancel)
API(prism_run_free)
API(prism_run_plugins)
API(prism_reward_create)
API(prism_reward_score)
API(prism_reward_free)
API(prism_judge_create)
API(prism_judge_assess)
API(prism_judge_free)
API(prism_plugins_list)

static FILE *report;

/* One report line for a call's status, its error message or its result. */
static void line(const char *what, prism_embed_status status, prism_error *error, const char *result) {
  fprintf(report, "%s\t%d\t%s\n", what, status, error ? p_prism_error_message(error) : (result ? result : ""));
  p_prism_error_free(error);
}

static int32_t count_steps(void *user_data, int64_t step, const char *metrics_json) {
  (void)step;
  (void)metrics_json;
  ++*(int *)user_data;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 6) return 2;
  report = fopen(argv[4], "w");
  if (!report) return 2;

  struct sigaction before[NSIG];
  for (int s = 1; s < NSIG; s++) sigaction(s, NULL, &before[s]);

  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(report, "dlopen\t-1\t%s\n", dlerror());
    return 1;
  }
#define LOAD(name) \
  if (!(p_##name = (__typeof__(name) *)dlsym(lib, #name))) { fprintf(report, "dlsym\t-1\t%s\n", #name); return 1; }
  LOAD(prism_config_load) LOAD(prism_config_parse) LOAD(prism_config_set) LOAD(prism_config_free)
  LOAD(prism_error_message) LOAD(prism_error_code) LOAD(prism_error_free) LOAD(prism_string_free)
  LOAD(prism_run_create) LOAD(prism_run_steps) LOAD(prism_run_evaluate) LOAD(prism_run_cancel)
  LOAD(prism_run_free) LOAD(prism_run_plugins) LOAD(prism_reward_create) LOAD(prism_reward_score)
  LOAD(prism_reward_free) LOAD(prism_judge_create) LOAD(prism_judge_assess) LOAD(prism_judge_free)
  LOAD(prism_plugins_list)

  prism_error *error = NULL;
  prism_embed_status status;
  char *text = NULL;

  /* A short run, no log callback: nothing may reach stdout or stderr. */
  prism_config *config = NULL;
  status = p_prism_config_load(argv[2], &config, &error);
  line("config", status, error, "");
  error = NULL;
  prism_run *run = NULL;
  status = p_prism_run_create(config, argv[3], NULL, &run, &error);
  line("create", status, error, "");
  error = NULL;
  if (run) {
    int steps = 0;
    int64_t completed = 0;
    status = p_prism_run_steps(run, 2, count_steps, &steps, &completed, &error);
    char counts[64];
    snprintf(counts, sizeof counts, "%lld %d", (long long)completed, steps);
    line("steps", status, error, counts);
    error = NULL;
    status = p_prism_run_evaluate(run, &text, &error);
    line("evaluate", status, error, text);
    p_prism_string_free(text);
    text = NULL;
    error = NULL;
    status = p_prism_run_plugins(run, &text, &error);
    line("plugins", status, error, text);
    p_prism_string_free(text);
    text = NULL;
    error = NULL;
    /* A cancel with no call in flight stops the next call at once. */
    p_prism_run_cancel(run);
    completed = -1;
    status = p_prism_run_steps(run, 5, NULL, NULL, &completed, &error);
    snprintf(counts, sizeof counts, "cancelled-steps %lld", (long long)completed);
    line(counts, status, error, "");
    error = NULL;
    p_prism_run_free(run);
  }

  /* The reward and judge a config names, through the host's checks. */
  prism_reward *reward = NULL;
  status = p_prism_reward_create(config, &reward, &error);
  line("reward", status, error, "");
  error = NULL;
  if (reward) {
    prism_sample samples[2] = {{"1+2=", "1+2=3;#3", "3", ""}, {"1+2=", "1+2=4;#4", "3", NULL}};
    double rewards[2] = {-1, -1};
    uint8_t correct[2] = {9, 9};
    status = p_prism_reward_score(reward, samples, 2, rewards, correct, &error);
    char scores[96];
    snprintf(scores, sizeof scores, "%g %d %g %d", rewards[0], correct[0], rewards[1], correct[1]);
    line("score", status, error, scores);
    error = NULL;
    p_prism_reward_free(reward);
  }
  prism_judge *judge = NULL;
  status = p_prism_judge_create(config, &judge, &error);
  line("judge", status, error, "");
  error = NULL;
  if (judge) {
    status = p_prism_judge_assess(
        judge,
        "{\"prompt\": \"1+2+3=\", \"reference\": \"6\", \"completions\": [\"1+2=3;3+3=6;#6\", \"1+2=4;4+3=7;#7\"],"
        " \"rewards\": [1, 0], \"correct\": [true, false]}",
        &text, &error);
    line("assess", status, error, text);
    p_prism_string_free(text);
    text = NULL;
    error = NULL;
    p_prism_judge_free(judge);
  }
  p_prism_config_free(config);

  /* Errors: each an error object; the process goes on. */
  config = NULL;
  status = p_prism_config_parse("grpo: {group_sise: 4}\n", "inline.yaml", &config, &error);
  line("invalid-config", status, error, "");
  error = NULL;
  status = p_prism_config_load(argv[2], &config, &error);
  p_prism_error_free(error);
  error = NULL;
  p_prism_config_set(config, "model.plugin=PrismNoSuchPlugin", NULL);
  run = NULL;
  status = p_prism_run_create(config, argv[3], NULL, &run, &error);
  line("missing-plugin", status, error, "");
  error = NULL;
  p_prism_config_free(config);
  config = NULL;
  status = p_prism_config_load(argv[5], &config, &error);
  line("bad-plugin-config", status, error, "");
  error = NULL;
  status = p_prism_run_create(config, argv[3], NULL, &run, &error);
  line("failing-plugin", status, error, "");
  error = NULL;
  p_prism_config_free(config);
  status = p_prism_run_create(NULL, argv[3], NULL, &run, &error);
  line("null-config", status, error, "");
  error = NULL;
  status = p_prism_plugins_list(&text, &error);
  line("list", status, error, text);
  p_prism_string_free(text);

  /* No signal handler may have been installed or changed. */
  char changed[512] = "";
  for (int s = 1; s < NSIG; s++) {
    struct sigaction now;
    sigaction(s, NULL, &now);
    /* SA_RESTORER is glibc's bookkeeping (set by any sigaction call), not a disposition. */
    int mask = ~0x04000000;
    if (now.sa_handler != before[s].sa_handler || (now.sa_flags & mask) != (before[s].sa_flags & mask)) {
      char number[16];
      snprintf(number, sizeof number, " %d", s);
      strncat(changed, number, sizeof changed - strlen(changed) - 1);
    }
  }
  fprintf(report, "signals\t%s%s\n", changed[0] ? "changed" : "unchanged", changed);
  fclose(report);
  return 0;
}
