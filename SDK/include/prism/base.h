/*
 * prism/base.h — the foundation of the Prism plugin ABI, version 1.
 *
 * A Prism plugin is a shared library that exports exactly one function,
 * `prism_get_plugin_entry`. Everything else is reached through the tables it
 * returns. This file defines the common vocabulary: status codes, strings,
 * the host API handed to plugins, and the plugin entry table.
 *
 * Conventions used in every Prism header
 * --------------------------------------
 * - Pointers are non-null unless marked PRISM_NULLABLE.
 * - Every string that crosses a call is UTF-8 with an explicit length
 *   (prism_str). Static metadata strings (id, name, ...) are NUL-terminated.
 * - Ownership: "borrowed" means the callee may read it only during the call;
 *   "plugin-owned" means the plugin keeps it alive for the stated time; the
 *   party that allocates memory is the party that frees it.
 * - Threading tags, as in CLAP:
 *     [any-thread]     may be called from any thread, but calls on the same
 *                      instance are never concurrent (the host serialises);
 *     [thread-safe]    may be called concurrently from several threads;
 *     [load-thread]    called only while the host loads the library.
 * - Failure: functions return prism_status; PRISM_OK (0) is success. On a
 *   failure the outputs are unspecified and the plugin makes a message
 *   available through `last_error`. Nothing ever unwinds across the boundary
 *   (no C++ exceptions, Rust panics, Swift traps, longjmp).
 * - Versioning: structs that the other side reads start with `struct_size`
 *   and only ever grow at the end. A reader uses only the fields that the
 *   writer's struct_size covers. An incompatible change gets a new
 *   interface id ("prism.reward/2"), never a changed struct.
 */
#ifndef PRISM_BASE_H
#define PRISM_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define PRISM_EXTERN_C_BEGIN extern "C" {
#define PRISM_EXTERN_C_END }
#define PRISM_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define PRISM_EXTERN_C_BEGIN
#define PRISM_EXTERN_C_END
#define PRISM_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* Nullability: clang (and so Swift) understands it; other compilers ignore it. */
#if defined(__clang__)
#define PRISM_NULLABLE _Nullable
#define PRISM_NONNULL _Nonnull
#define PRISM_ASSUME_NONNULL_BEGIN                                            \
  _Pragma("clang diagnostic push")                                            \
  _Pragma("clang diagnostic ignored \"-Wnullability-extension\"")             \
  _Pragma("clang assume_nonnull begin")
#define PRISM_ASSUME_NONNULL_END                                              \
  _Pragma("clang assume_nonnull end")                                         \
  _Pragma("clang diagnostic pop")
#else
#define PRISM_NULLABLE
#define PRISM_NONNULL
#define PRISM_ASSUME_NONNULL_BEGIN
#define PRISM_ASSUME_NONNULL_END
#endif

/* Marks the single exported symbol; build plugins with -fvisibility=hidden. */
#if defined(_WIN32)
#define PRISM_EXPORT __declspec(dllexport)
#else
#define PRISM_EXPORT __attribute__((visibility("default")))
#endif

PRISM_EXTERN_C_BEGIN
PRISM_ASSUME_NONNULL_BEGIN

/* The ABI this header describes. */
#define PRISM_ABI_MAJOR 1
#define PRISM_ABI_MINOR 6 /* 1.1: prism.strategy/1; 1.2: where the first error is;
                           1.3: backend tokenize_prompt (chat templates);
                           1.4: the judge's report (tokens used, failures by cause);
                           1.5: backend logprobs_keep + backward_kept (one
                                forward pass for log-probs and backward);
                           1.6: backend decode_step_rows (finished rows
                                are decoded no more) */

/* ---------------------------------------------------------------- status */

/* 0 = success; anything else is a failure. Plugins may return any of these. */
typedef int32_t prism_status;

#define PRISM_OK 0
#define PRISM_E_INVALID_ARGUMENT 1 /* an argument or input is malformed */
#define PRISM_E_CONFIG 2           /* the JSON config is malformed or wrong */
#define PRISM_E_UNSUPPORTED 3      /* the operation is not supported */
#define PRISM_E_OUT_OF_MEMORY 4    /* allocation failed */
#define PRISM_E_IO 5               /* a file or network operation failed */
#define PRISM_E_TIMEOUT 6          /* a deadline passed */
#define PRISM_E_BUFFER_TOO_SMALL 7 /* an output buffer is too small */
#define PRISM_E_STATE 8            /* called in the wrong state */
#define PRISM_E_INTERNAL 9         /* anything else; see last_error */

/* --------------------------------------------------------------- strings */

/* UTF-8 text with an explicit length in bytes; not necessarily
 * NUL-terminated. `data` may be NULL only when `len` is 0. The owner is
 * stated wherever a prism_str appears. */
typedef struct prism_str {
  const char *PRISM_NULLABLE data;
  size_t len;
} prism_str;

/* ------------------------------------------------------------ host API */

/* Log levels for prism_host.log. */
#define PRISM_LOG_DEBUG 0
#define PRISM_LOG_INFO 1
#define PRISM_LOG_WARNING 2
#define PRISM_LOG_ERROR 3

/* What the host gives a plugin instance at `create`. Host-owned; valid until
 * the instance is destroyed. The plugin may keep the pointer. */
typedef struct prism_host {
  uint32_t struct_size; /* sizeof(prism_host) as the host knows it */
  uint16_t abi_major;   /* the host's ABI major */
  uint16_t abi_minor;   /* the host's ABI minor */
  void *PRISM_NULLABLE host_ctx; /* opaque; pass back to the callbacks */

  /* Write one log line. `message` is borrowed for the call.
   * [thread-safe] Never fails. */
  void (*log)(void *PRISM_NULLABLE host_ctx, int32_t level, prism_str message);

  /* Look up an optional host capability by versioned id. Returns a
   * host-owned table valid for the instance's lifetime, or NULL if the host
   * does not offer it. `id` is a borrowed NUL-terminated string.
   * [thread-safe] */
  const void *PRISM_NULLABLE (*PRISM_NONNULL get_extension)(void *PRISM_NULLABLE host_ctx,
                                              const char *id);
} prism_host;

/* ------------------------------------------------------- plugin entry */

/* The table a plugin returns from prism_get_plugin_entry. Plugin-owned,
 * immutable, valid for as long as the library is loaded (the host never
 * unloads a plugin library). */
typedef struct prism_plugin_entry {
  uint32_t struct_size; /* sizeof(prism_plugin_entry) as the plugin knows it */
  uint16_t abi_major;   /* must equal the host's major */
  uint16_t abi_minor;   /* the host uses only fields this minor defines */

  /* Static NUL-terminated UTF-8 metadata. `id` is reverse-DNS
   * ("org.example.my-reward"); `version` is the plugin's own version. */
  const char *id;
  const char *name;
  const char *version;
  const char *description;

  /* Create an instance from a JSON config (borrowed for the call; "{}" when
   * the user gave none). On success sets *out_instance (may be any value,
   * including NULL, that the plugin later accepts) and returns PRISM_OK.
   * On failure returns non-zero and makes the reason available through
   * last_error(NULL) on the same thread. The plugin must not call host
   * callbacks after destroy. [any-thread] */
  prism_status (*create)(const prism_host *host, prism_str config_json,
                         void *PRISM_NULLABLE *PRISM_NONNULL out_instance);

  /* Destroy an instance created by `create`. Never fails. After this the
   * instance pointer is invalid. [any-thread, not concurrent with any other
   * call on the instance] */
  void (*destroy)(void *PRISM_NULLABLE instance);

  /* Return the interface table for a versioned id ("prism.reward/1"), or
   * NULL if the instance does not provide it. The table is plugin-owned and
   * valid until destroy. `interface_id` is borrowed. [any-thread] */
  const void *PRISM_NULLABLE (*PRISM_NONNULL get_interface)(void *PRISM_NULLABLE instance,
                                              const char *interface_id);

  /* The message of the last failed call on `instance`, or, with NULL, of
   * the last failed `create` on the calling thread. Plugin-owned; valid
   * until the next call on the same instance (or, for NULL, the next
   * `create` on the thread). Returns an empty string when there is none.
   * [any-thread] */
  prism_str (*last_error)(void *PRISM_NULLABLE instance);
} prism_plugin_entry;

/* The one exported function. The host passes the highest ABI major it
 * speaks; the plugin returns its table (whose abi_major the host then
 * checks) or NULL if it cannot serve that host at all. Must be cheap and
 * side-effect free: `prism plugins inspect` calls it. [load-thread] */
typedef const prism_plugin_entry *PRISM_NULLABLE (*prism_get_plugin_entry_fn)(
    uint16_t host_abi_major);

#define PRISM_ENTRY_SYMBOL "prism_get_plugin_entry"

/* ------------------------------------------------------- layout checks */

PRISM_STATIC_ASSERT(sizeof(prism_str) == 2 * sizeof(void *),
                    "prism_str layout");
PRISM_STATIC_ASSERT(offsetof(prism_str, len) == sizeof(void *),
                    "prism_str.len offset");
PRISM_STATIC_ASSERT(offsetof(prism_host, host_ctx) == 8,
                    "prism_host.host_ctx offset");
PRISM_STATIC_ASSERT(offsetof(prism_host, log) == 8 + sizeof(void *),
                    "prism_host.log offset");
PRISM_STATIC_ASSERT(sizeof(prism_host) == 8 + 3 * sizeof(void *),
                    "prism_host size");
PRISM_STATIC_ASSERT(offsetof(prism_plugin_entry, id) == 8,
                    "prism_plugin_entry.id offset");
PRISM_STATIC_ASSERT(offsetof(prism_plugin_entry, create) ==
                        8 + 4 * sizeof(void *),
                    "prism_plugin_entry.create offset");
PRISM_STATIC_ASSERT(sizeof(prism_plugin_entry) == 8 + 8 * sizeof(void *),
                    "prism_plugin_entry size");

PRISM_ASSUME_NONNULL_END
PRISM_EXTERN_C_END

#endif /* PRISM_BASE_H */
