#include "prism_signals.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t requested = 0;
static int wake_pipe[2] = {-1, -1};

static void on_signal(int signal_number) {
  if (requested) _exit(128 + signal_number);
  requested = signal_number;
  if (wake_pipe[1] >= 0) {
    unsigned char byte = (unsigned char)signal_number;
    int saved = errno;
    (void)!write(wake_pipe[1], &byte, 1);
    errno = saved;
  }
}

void prism_signals_install(void) {
  if (wake_pipe[0] < 0 && pipe(wake_pipe) == 0) {
    fcntl(wake_pipe[0], F_SETFD, FD_CLOEXEC);
    fcntl(wake_pipe[1], F_SETFD, FD_CLOEXEC);
    fcntl(wake_pipe[1], F_SETFL, O_NONBLOCK);
  }
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

int prism_signals_requested(void) { return requested; }

int prism_signals_wait(int timeout_ms) {
  if (requested) return requested;
  if (wake_pipe[0] < 0) return 0;
  struct pollfd fd = {.fd = wake_pipe[0], .events = POLLIN, .revents = 0};
  int ready = poll(&fd, 1, timeout_ms);
  if (ready > 0) {
    unsigned char byte;
    (void)!read(wake_pipe[0], &byte, 1);
  }
  return requested;
}

void prism_signals_block_in_thread(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
}
