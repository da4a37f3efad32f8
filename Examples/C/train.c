/*
 * train.c — drives a Prism training run from C through libPrismEmbed.so.
 *
 *   swift build
 *   cc -std=c11 -I SDK/include Examples/C/train.c -L .build/debug -lPrismEmbed \
 *      -Wl,-rpath,$PWD/.build/debug -o /tmp/prism-train
 *   /tmp/prism-train CONFIG.yaml RUN_DIR [key=value ...]
 *
 * Loads the config, applies the overrides (as `prism train --set`), trains
 * a few steps printing each step's metrics line, evaluates, and exits 0; on
 * an error it prints the library's one-line message and exits 1.
 * Documentation/Embedding.md walks through it.
 */
#include <prism/embed.h>

#include <stdio.h>
#include <string.h>

/* Log lines from the run (resuming, evaluations, progress) go to stderr. */
static void on_log(void *user_data, int32_t level, const char *message) {
  (void)user_data;
  fprintf(stderr, "%s%s\n", level == PRISM_LOG_WARNING ? "warning: " : "", message);
}

/* Each completed step's metrics, as metrics.jsonl has them. */
static int32_t on_step(void *user_data, int64_t step, const char *metrics_json) {
  int *printed = user_data;
  printf("step %lld: %s\n", (long long)step, metrics_json);
  (*printed)++;
  return 0; /* go on */
}

static int fail(const char *what, prism_error *error) {
  fprintf(stderr, "%s: %s\n", what, prism_error_message(error));
  prism_error_free(error);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s CONFIG.yaml RUN_DIR [key=value ...]\n", argv[0]);
    return 2;
  }
  if (!prism_embed_check_version(PRISM_EMBED_VERSION_NUMBER)) {
    fprintf(stderr, "libPrismEmbed %s cannot serve a program built for %s\n", prism_embed_version(),
            PRISM_EMBED_VERSION);
    return 1;
  }

  prism_error *error = NULL;
  prism_config *config = NULL;
  if (prism_config_load(argv[1], &config, &error) != PRISM_EMBED_OK) return fail("config", error);
  for (int i = 3; i < argc; i++) {
    if (prism_config_set(config, argv[i], &error) != PRISM_EMBED_OK) {
      prism_config_free(config);
      return fail("override", error);
    }
  }

  prism_run_options options;
  memset(&options, 0, sizeof options);
  options.struct_size = sizeof options;
  options.log = on_log;
  prism_run *run = NULL;
  prism_embed_status status = prism_run_create(config, argv[2], &options, &run, &error);
  prism_config_free(config); /* the run keeps its own copy */
  if (status != PRISM_EMBED_OK) return fail("run", error);

  int printed = 0;
  int64_t completed = 0;
  status = prism_run_steps(run, 1000, on_step, &printed, &completed, &error);
  if (status != PRISM_EMBED_OK) {
    prism_run_free(run);
    return fail("training", error);
  }

  char *evaluation = NULL;
  if (prism_run_evaluate(run, &evaluation, &error) == PRISM_EMBED_OK) {
    printf("evaluation: %s\n", evaluation);
    prism_string_free(evaluation);
  } else {
    fprintf(stderr, "evaluation: %s\n", prism_error_message(error));
    prism_error_free(error);
  }
  printf("trained %lld steps (run at step %lld, finished %d)\n", (long long)completed,
         (long long)prism_run_step_count(run), prism_run_finished(run));
  prism_run_free(run); /* checkpoint, report.html, plugins ended, directory released */
  return 0;
}
