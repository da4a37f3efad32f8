/*
 * Keeps libPrismEmbed.so from changing the embedding program's signal
 * dispositions.
 *
 * Loading the library loads the Swift runtime (libswiftCore.so), whose
 * crash reporter installs handlers for SIGQUIT, SIGABRT, SIGBUS, SIGFPE,
 * SIGILL, SIGSEGV and SIGTRAP, each only where the disposition was still
 * the default. This constructor runs after the runtime's (a library's
 * dependencies are initialised first) and puts back the default for each
 * of those signals whose handler lies in libswiftCore: exactly what the
 * runtime changed, nothing the program installed itself. Setting
 * SWIFT_BACKTRACE (the runtime's own switch) keeps the runtime's handlers.
 */
#define _GNU_SOURCE
#include "embed_quiet.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static int in_swift_runtime(const void *address) {
  Dl_info info;
  if (!address || dladdr(address, &info) == 0 || !info.dli_fname) return 0;
  const char *name = strrchr(info.dli_fname, '/');
  name = name ? name + 1 : info.dli_fname;
  return strncmp(name, "libswiftCore.so", 15) == 0;
}

__attribute__((constructor)) static void prism_embed_restore_signals(void) {
  if (getenv("SWIFT_BACKTRACE")) return;
  static const int signals[] = {SIGQUIT, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP};
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
    struct sigaction current;
    if (sigaction(signals[i], NULL, &current) != 0) continue;
    const void *handler = (current.sa_flags & SA_SIGINFO) ? (const void *)current.sa_sigaction
                                                          : (const void *)current.sa_handler;
    if (handler == (const void *)SIG_DFL || handler == (const void *)SIG_IGN) continue;
    if (!in_swift_runtime(handler)) continue;
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigemptyset(&fallback.sa_mask);
    sigaction(signals[i], &fallback, NULL);
  }
}
