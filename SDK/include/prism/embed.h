/*
 * prism/embed.h — Prism's embedding API: drive the GRPO host from your own
 * program (libPrismEmbed.so). Documentation/Embedding.md has a walk-through
 * and a complete example; this header is the reference.
 *
 * Conventions (every function follows them):
 *
 * - Status. A fallible function returns prism_embed_status: PRISM_EMBED_OK
 *   (0) or one of the codes below. When it fails and `error` is not NULL,
 *   *error receives a new prism_error (message and code) that the caller
 *   owns and frees with prism_error_free; on success *error is left alone.
 *   Pass NULL for `error` to get the status only.
 * - Ownership. Objects (prism_config, prism_run, prism_reward, prism_judge,
 *   prism_plugin, prism_error) are opaque: made by a *_new/_create/_load
 *   function, freed by the matching *_free (NULL is accepted and ignored).
 *   Strings the library returns as `char **` are new, NUL-terminated UTF-8,
 *   owned by the caller, freed with prism_string_free. Strings returned as
 *   `const char *` belong to the object they come from and live as long as
 *   it does. Strings and arrays passed in are only read during the call and
 *   are never kept.
 * - Threads. Objects are not locked: one thread at a time per object (any
 *   thread, not necessarily the one that made it). Different objects may be
 *   used from different threads at once. The exceptions are said where they
 *   are (prism_run_cancel may be called from any thread at any time).
 *   Callbacks run on the thread of the call that invokes them, before it
 *   returns.
 * - Quiet. The library prints nothing on stdout or stderr, installs no
 *   signal handlers and never calls exit. Messages go to the log callback
 *   of prism_run_options when one is given, else nowhere. (Plugins are
 *   other people's code: a plugin may print; run it with
 *   `<role>.isolation: process` to contain it.)
 * - No hidden global state: everything a call uses is in its arguments,
 *   the environment (PRISM_PLUGIN_PATH) and the files it names. Plugin
 *   libraries, once loaded, stay loaded until the process ends.
 */
#ifndef PRISM_EMBED_H
#define PRISM_EMBED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks each function of this API (the build checks that the library
 * exports exactly these, with these signatures). */
#define PRISM_EMBED_API

/* ------------------------------------------------------------- versions */

/* The version of this header. The library's is prism_embed_version_number().
 * Same major: compatible; a newer minor only adds functions. */
#define PRISM_EMBED_VERSION_MAJOR 1
#define PRISM_EMBED_VERSION_MINOR 0
#define PRISM_EMBED_VERSION_PATCH 0
#define PRISM_EMBED_VERSION "1.0.0"
#define PRISM_EMBED_VERSION_NUMBER \
  (PRISM_EMBED_VERSION_MAJOR * 10000 + PRISM_EMBED_VERSION_MINOR * 100 + PRISM_EMBED_VERSION_PATCH)

/* The library's version as "MAJOR.MINOR.PATCH" (static storage). Any thread. */
PRISM_EMBED_API const char *prism_embed_version(void);

/* The library's version as MAJOR*10000 + MINOR*100 + PATCH. Any thread. */
PRISM_EMBED_API int32_t prism_embed_version_number(void);

/* 1 when the library can serve a program built against the header whose
 * PRISM_EMBED_VERSION_NUMBER is `header_version` (same major, library minor
 * at least the header's), else 0. Call it first:
 *   if (!prism_embed_check_version(PRISM_EMBED_VERSION_NUMBER)) ...
 * Any thread. */
PRISM_EMBED_API int32_t prism_embed_check_version(int32_t header_version);

/* --------------------------------------------------------------- errors */

typedef int32_t prism_embed_status;

#define PRISM_EMBED_OK 0
#define PRISM_EMBED_ERROR_INVALID_ARGUMENT 1 /* NULL where an object is needed, bad UTF-8, n < 0 */
#define PRISM_EMBED_ERROR_CONFIG 2           /* malformed config, unknown key, bad value */
#define PRISM_EMBED_ERROR_DATA 3             /* missing or malformed data file */
#define PRISM_EMBED_ERROR_PLUGIN 4           /* a plugin or function that does not load or fails a call */
#define PRISM_EMBED_ERROR_RUN 5              /* the run directory refused, or a step failed */
#define PRISM_EMBED_ERROR_CANCELLED 6        /* prism_run_cancel stopped the call */
#define PRISM_EMBED_ERROR_STATE 7            /* the object cannot do this now (e.g. a failed run) */
#define PRISM_EMBED_ERROR_INTERNAL 8         /* anything else */

/* An error: its message is the one line the `prism` command would print. */
typedef struct prism_error prism_error;

/* The message (owned by `error`). NULL error: "". Any thread. */
PRISM_EMBED_API const char *prism_error_message(const prism_error *error);

/* The status code (one of PRISM_EMBED_ERROR_*). NULL error: PRISM_EMBED_OK. */
PRISM_EMBED_API prism_embed_status prism_error_code(const prism_error *error);

/* Frees an error. NULL is ignored. */
PRISM_EMBED_API void prism_error_free(prism_error *error);

/* Frees a string the library returned through a `char **`. NULL is ignored. */
PRISM_EMBED_API void prism_string_free(char *string);

/* --------------------------------------------------------------- config */

/* A training config: the keys of Documentation/Config.md, starting from the
 * defaults. */
typedef struct prism_config prism_config;

/* A config holding the defaults. Never fails; free with prism_config_free. */
PRISM_EMBED_API prism_config *prism_config_new(void);

/* A config parsed from YAML (or JSON, which is YAML) text. `source` names
 * it in error messages (NULL: "config"); relative paths in it are relative
 * to the working directory. */
PRISM_EMBED_API prism_embed_status prism_config_parse(const char *text, const char *source, prism_config **out,
                                                      prism_error **error);

/* A config read from a YAML file; relative paths in it are relative to the
 * file's folder (as `prism train FILE`). */
PRISM_EMBED_API prism_embed_status prism_config_load(const char *path, prism_config **out, prism_error **error);

/* Applies one "key=value" override, as the command line's --set does
 * ("grpo.group_size=4", "model.config.d_model=64"). */
PRISM_EMBED_API prism_embed_status prism_config_set(prism_config *config, const char *assignment, prism_error **error);

/* The resolved config as YAML (every key, defaults included). */
PRISM_EMBED_API prism_embed_status prism_config_yaml(const prism_config *config, char **out, prism_error **error);

PRISM_EMBED_API void prism_config_free(prism_config *config);

/* -------------------------------------------------------------- plugins */

/* A plugin library loaded with dlopen and validated (its entry table). */
typedef struct prism_plugin prism_plugin;

/* Loads a plugin by path (containing '/' or ending in .so) or by product
 * name ("PrismExactAnswer"), searched next to libPrismEmbed.so, next to the
 * executable, then in PRISM_PLUGIN_PATH. */
PRISM_EMBED_API prism_embed_status prism_plugin_load(const char *name, prism_plugin **out, prism_error **error);

/* The plugin as JSON: {"path", "id", "name", "version", "summary",
 * "abi": "MAJOR.MINOR"}. (Its interfaces are known once an instance is
 * created with a config: see `prism plugins inspect`.) */
PRISM_EMBED_API prism_embed_status prism_plugin_info(const prism_plugin *plugin, char **json, prism_error **error);

/* Every plugin in the search directories, as a JSON array of the objects
 * prism_plugin_info returns; a library that fails to load is listed as
 * {"path", "error"}, and ordinary shared libraries (no plugin entry) are
 * left out. Each library is loaded into this process (its constructors
 * run); `prism plugins list` does the same in a separate process. */
PRISM_EMBED_API prism_embed_status prism_plugins_list(char **json, prism_error **error);

/* Frees the handle; the library itself stays loaded (see above). */
PRISM_EMBED_API void prism_plugin_free(prism_plugin *plugin);

/* ---------------------------------------------------- rewards and judges */

/* The reward a config names (reward.plugin with reward.config, or
 * reward.function), loaded as a run would load it, its answers checked as a
 * run checks them. */
typedef struct prism_reward prism_reward;

/* One completion to score. Every field is NUL-terminated UTF-8; NULL reads
 * as "". */
typedef struct prism_sample {
  const char *prompt;
  const char *completion;
  const char *reference;     /* the reference final answer; "" when unknown */
  const char *metadata_json; /* a JSON object from the dataset, or "" */
} prism_sample;

PRISM_EMBED_API prism_embed_status prism_reward_create(const prism_config *config, prism_reward **out,
                                                       prism_error **error);

/* Scores `count` samples: rewards[i] (NaN = not applicable) and correct[i]
 * (0 or 1), both arrays of `count` elements owned by the caller. On failure
 * neither array is written. */
PRISM_EMBED_API prism_embed_status prism_reward_score(prism_reward *reward, const prism_sample *samples, size_t count,
                                                      double *rewards, uint8_t *correct, prism_error **error);

PRISM_EMBED_API void prism_reward_free(prism_reward *reward);

/* The judge a config names (judge.plugin with judge.config, or
 * judge.function). */
typedef struct prism_judge prism_judge;

PRISM_EMBED_API prism_embed_status prism_judge_create(const prism_config *config, prism_judge **out,
                                                      prism_error **error);

/* Assesses one group given as JSON: {"prompt", "reference", "completions":
 * [...], "rewards": [...], "correct": [...], optional "reference_steps":
 * [...] and "metadata_json"}. *feedback receives {"scores": [...],
 * "first_errors": [... or null], "first_error_spans": [[begin, end] or
 * null], "disposition": "keep" | "drop" | "resample", "report":
 * {"prompt_tokens", "completion_tokens", "requests", "retries",
 * "cache_hits"}} (the report is all 0 for judges without a model behind
 * them). */
PRISM_EMBED_API prism_embed_status prism_judge_assess(prism_judge *judge, const char *group_json, char **feedback,
                                                      prism_error **error);

PRISM_EMBED_API void prism_judge_free(prism_judge *judge);

/* ----------------------------------------------------------------- runs */

/* A training run in a run directory (config.yaml, metrics.jsonl,
 * samples.jsonl, checkpoints/, report.html), as `prism train` writes it. */
typedef struct prism_run prism_run;

/* Log levels passed to prism_log_fn. */
#define PRISM_LOG_INFO 0     /* what a run does: resuming, evaluations, steps */
#define PRISM_LOG_WARNING 1  /* a plugin call failed and the run went on */

/* Receives one message (one line, no newline; valid during the call). */
typedef void (*prism_log_fn)(void *user_data, int32_t level, const char *message);

/* Called after each completed step with its metrics line (the JSON object
 * appended to metrics.jsonl; valid during the call). Return 0 to go on,
 * anything else to stop after this step (the call then returns
 * PRISM_EMBED_OK). Must not call into the same run, except prism_run_cancel. */
typedef int32_t (*prism_step_fn)(void *user_data, int64_t step, const char *metrics_json);

/* How a run is created. Zero-initialise it and set struct_size: a library
 * with a newer minor version reads only the fields the caller knows. */
typedef struct prism_run_options {
  uint32_t struct_size;       /* sizeof(prism_run_options) */
  int32_t resume;             /* 1: continue the run in the directory from its newest checkpoint; the
                                 config may change only keys that do not define the run (seed,
                                 model.*, data.*, strategy.* do) unless `force` */
  int32_t overwrite;          /* 1: move a run already in the directory aside (never deleted) */
  int32_t force;              /* with resume: accept changes to keys that define the run */
  prism_log_fn log;           /* NULL: messages are dropped */
  void *log_user_data;
} prism_run_options;

/* Loads the config's plugins and opens the run in `directory` (its lock held
 * until prism_run_free): from its newest checkpoint with options->resume,
 * else fresh (the warm start and the step-0 evaluation, when configured, run
 * here). `options` may be NULL (all zero). The config is copied. Cancellable
 * with prism_run_cancel from another thread only once created; creation
 * itself may take as long as the warm start. */
PRISM_EMBED_API prism_embed_status prism_run_create(const prism_config *config, const char *directory,
                                                    const prism_run_options *options, prism_run **out,
                                                    prism_error **error);

/* Takes up to `count` steps (count >= 0), calling `on_step` (may be NULL)
 * after each. Stops early, with PRISM_EMBED_OK, when the run ends
 * (run.steps, or the token budget) or on_step asks to. `*completed` (may
 * be NULL) receives the number of steps taken, also on failure.
 * PRISM_EMBED_ERROR_CANCELLED: prism_run_cancel was called; the step in
 * flight ended cleanly, the run stands at its last completed step with
 * that step's checkpoint on disk, and the next call continues from there.
 * PRISM_EMBED_ERROR_RUN: a step failed (a plugin error; a failure to
 * write the run directory comes with its own code); either way the run
 * keeps its last checkpoint and takes no further step: later calls return
 * PRISM_EMBED_ERROR_STATE (free it; create it again with resume). */
PRISM_EMBED_API prism_embed_status prism_run_steps(prism_run *run, int64_t count, prism_step_fn on_step,
                                                   void *user_data, int64_t *completed, prism_error **error);

/* The last completed step (0 before the first). */
PRISM_EMBED_API int64_t prism_run_step_count(const prism_run *run);

/* 1 when the run has ended (run.steps taken or the token budget spent). */
PRISM_EMBED_API int32_t prism_run_finished(const prism_run *run);

/* Evaluates the current weights on the held-out problems (data.eval, the
 * first data.eval_problems), as a due step does. *json receives
 * {"problems", "accuracy", "accuracy_stderr", "process_accuracy",
 * "step_score", "k", "pass_at_k"}. Cancellable. */
PRISM_EMBED_API prism_embed_status prism_run_evaluate(prism_run *run, char **json, prism_error **error);

/* Saves the last completed step's checkpoint now (nothing to do when it is
 * saved already). Resume later with options->resume. */
PRISM_EMBED_API prism_embed_status prism_run_checkpoint(prism_run *run, prism_error **error);

/* The run's plugins as a JSON object {"model": ..., "sampler": ...,
 * "reward": ..., "judge": ..., "strategy": ...}: each the plugin's file, a
 * function ("library:symbol"), or null. */
PRISM_EMBED_API prism_embed_status prism_run_plugins(const prism_run *run, char **json, prism_error **error);

/* Asks the run's current or next call (prism_run_steps, prism_run_evaluate)
 * to stop at its next safe point; that call returns
 * PRISM_EMBED_ERROR_CANCELLED and consumes the request. Any thread, any
 * time while the run exists; never blocks. */
PRISM_EMBED_API void prism_run_cancel(prism_run *run);

/* Ends the run: saves the last step's checkpoint if it is not on disk
 * (after a failed step the checkpoints on disk are left as they are),
 * writes report.html, ends the plugins (and their processes) and releases
 * the directory. NULL is ignored. Not while another thread is in a call on
 * this run. */
PRISM_EMBED_API void prism_run_free(prism_run *run);

#ifdef __cplusplus
}
#endif

#endif /* PRISM_EMBED_H */
