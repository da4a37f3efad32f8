#define _GNU_SOURCE
#include "prism_isolation.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int prism_iso_socketpair(int out[2]) {
  return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out) == 0 ? 0 : -errno;
}

int prism_iso_memfd(void) {
  int fd = memfd_create("prism-plugin-shm", MFD_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

int prism_iso_spawn(const char *path, char *const argv[], int child_socket, int shm, pid_t *pid) {
  return prism_iso_spawn_logged(path, argv, child_socket, shm, -1, pid);
}

int prism_iso_spawn_logged(const char *path, char *const argv[], int child_socket, int shm, int output, pid_t *pid) {
  /* The dup2s below run in order: if either descriptor already is 3 or 4,
   * the first would clobber it. Spawn from copies above both. */
  int socket_copy = fcntl(child_socket, F_DUPFD_CLOEXEC, 10);
  int shm_copy = fcntl(shm, F_DUPFD_CLOEXEC, 10);
  if (socket_copy < 0 || shm_copy < 0) {
    int error = errno;
    if (socket_copy >= 0) close(socket_copy);
    if (shm_copy >= 0) close(shm_copy);
    return -error;
  }
  child_socket = socket_copy;
  shm = shm_copy;
  int output_copy = output >= 0 ? fcntl(output, F_DUPFD_CLOEXEC, 10) : -1;
  if (output >= 0 && output_copy < 0) {
    int error = errno;
    close(socket_copy);
    close(shm_copy);
    return -error;
  }
  output = output_copy;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  /* dup2 clears close-on-exec on the new descriptor. */
  posix_spawn_file_actions_adddup2(&actions, child_socket, PRISM_ISO_SOCKET_FD);
  posix_spawn_file_actions_adddup2(&actions, shm, PRISM_ISO_SHM_FD);
  if (output >= 0) {
    posix_spawn_file_actions_adddup2(&actions, output, 1);
    posix_spawn_file_actions_adddup2(&actions, output, 2);
  }
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  /* The runner's environment: ours, with Swift's crash backtracer off (the
   * host reports a runner's crash in one line; set SWIFT_BACKTRACE to
   * override). */
  size_t count = 0;
  int has_backtrace = 0;
  for (char **e = environ; *e; ++e, ++count) has_backtrace |= strncmp(*e, "SWIFT_BACKTRACE=", 16) == 0;
  char **env = malloc((count + 2) * sizeof(char *));
  if (!env) {
    close(socket_copy);
    close(shm_copy);
    if (output_copy >= 0) close(output_copy);
    return -ENOMEM;
  }
  memcpy(env, environ, count * sizeof(char *));
  if (!has_backtrace) env[count++] = "SWIFT_BACKTRACE=enable=no";
  env[count] = NULL;
  int status = posix_spawn(pid, path, &actions, &attributes, argv, env);
  free(env);
  close(socket_copy);
  close(shm_copy);
  if (output_copy >= 0) close(output_copy);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  return -status;
}

void prism_iso_runner_setup(void) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGINT, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  if (getppid() == 1) _exit(1); /* the host died before prctl */
}

static int write_all(int fd, const unsigned char *bytes, size_t length) {
  while (length > 0) {
    ssize_t n = send(fd, bytes, length, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    bytes += n;
    length -= (size_t)n;
  }
  return 0;
}

int prism_iso_send(int fd, const void *bytes, uint32_t length) {
  unsigned char header[4] = {(unsigned char)length, (unsigned char)(length >> 8), (unsigned char)(length >> 16),
                             (unsigned char)(length >> 24)};
  int status = write_all(fd, header, 4);
  return status ? status : write_all(fd, bytes, length);
}

int prism_iso_wait(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
  for (;;) {
    int ready = poll(&p, 1, timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return -errno;
    return ready > 0 ? 1 : 0;
  }
}

int prism_iso_read(int fd, void *bytes, size_t length, int timeout_ms) {
  unsigned char *out = bytes;
  while (length > 0) {
    int ready = prism_iso_wait(fd, timeout_ms);
    if (ready == 0) return -ETIMEDOUT;
    if (ready < 0) return ready;
    ssize_t n = read(fd, out, length);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == ECONNRESET ? -EPIPE : -errno;
    }
    if (n == 0) return -EPIPE;
    out += n;
    length -= (size_t)n;
  }
  return 0;
}

static int remap(prism_iso_region *region, size_t size) {
  if (region->base) munmap(region->base, region->size);
  region->base = NULL;
  region->size = 0;
  if (size == 0) return 0;
  void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, region->fd, 0);
  if (base == MAP_FAILED) return -errno;
  region->base = base;
  region->size = size;
  return 0;
}

int prism_iso_region_reserve(prism_iso_region *region, size_t size) {
  if (size <= region->size) return 0;
  struct stat info;
  if (fstat(region->fd, &info) != 0) return -errno;
  size_t have = (size_t)info.st_size;
  if (have < size) {
    size_t grown = have < 65536 ? 65536 : have;
    while (grown < size) grown *= 2;
    if (ftruncate(region->fd, (off_t)grown) != 0) return -errno;
    have = grown;
  }
  return remap(region, have);
}

int prism_iso_region_refresh(prism_iso_region *region) {
  struct stat info;
  if (fstat(region->fd, &info) != 0) return -errno;
  return (size_t)info.st_size > region->size ? remap(region, (size_t)info.st_size) : 0;
}

void prism_iso_region_unmap(prism_iso_region *region) { remap(region, 0); }

int prism_iso_reap(pid_t pid, int wait, int *signal_number, int *exit_status) {
  int status = 0;
  pid_t done;
  do {
    done = waitpid(pid, &status, wait ? 0 : WNOHANG);
  } while (done < 0 && errno == EINTR);
  if (done < 0) return -errno;
  if (done == 0) return 0;
  *signal_number = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  *exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return 1;
}

void prism_iso_kill(pid_t pid) { kill(pid, SIGKILL); }

void prism_iso_end(pid_t pid, int grace_ms, int *signal_number, int *exit_status) {
  *signal_number = 0;
  *exit_status = -1;
  struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
  for (int waited = 0; waited < grace_ms; waited += 5) {
    if (prism_iso_reap(pid, 0, signal_number, exit_status) != 0) return;
    nanosleep(&pause, NULL);
  }
  if (prism_iso_reap(pid, 0, signal_number, exit_status) != 0) return;
  kill(pid, SIGKILL);
  prism_iso_reap(pid, 1, signal_number, exit_status);
}
