#include "prism_signals.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t requested = 0;

static void on_signal(int signal_number) {
  (void)signal_number;
  if (requested) _exit(130);
  requested = 1;
}

void prism_signals_install(void) {
  struct sigaction action;
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, NULL);
  sigaction(SIGTERM, &action, NULL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

int prism_signals_requested(void) { return requested != 0; }
