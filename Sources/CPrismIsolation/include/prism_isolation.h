/* The process plumbing of out-of-process plugins: spawning a runner with
 * its socket and shared memory at fixed descriptors, framed messages with
 * deadlines, a growable shared-memory region, and reaping. Linux/POSIX. */
#ifndef PRISM_ISOLATION_H
#define PRISM_ISOLATION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The descriptors a runner finds its channel on. */
#define PRISM_ISO_SOCKET_FD 3
#define PRISM_ISO_SHM_FD 4

/* A socket pair (both ends close-on-exec): out[0] for the host, out[1] for
 * the runner. Returns 0 or -errno. */
int prism_iso_socketpair(int out[2]);

/* An anonymous shared-memory file (memfd), close-on-exec. Returns the
 * descriptor or -errno. */
int prism_iso_memfd(void);

/* Starts `path` with `argv` (NULL-terminated), `child_socket` as descriptor
 * 3 and `shm` as descriptor 4, stdin from /dev/null, stdout and stderr
 * inherited. Returns 0 and sets *pid, or -errno. */
int prism_iso_spawn(const char *path, char *const argv[], int child_socket, int shm, pid_t *pid);

/* The same, with the child's stdout and stderr going to `output` (-1 = inherited). */
int prism_iso_spawn_logged(const char *path, char *const argv[], int child_socket, int shm, int output, pid_t *pid);

/* For the runner: die with the host (PR_SET_PDEATHSIG), ignore SIGINT (the
 * host decides what a Ctrl-C means), and make SIGPIPE an error return. */
void prism_iso_runner_setup(void);

/* Writes a frame: a 4-byte little-endian length, then the bytes.
 * Returns 0 or -errno (-EPIPE when the peer is gone). */
int prism_iso_send(int fd, const void *bytes, uint32_t length);

/* Waits up to timeout_ms (-1 = forever) for `fd` to be readable.
 * Returns 1 readable (or closed), 0 timed out, -errno on error. */
int prism_iso_wait(int fd, int timeout_ms);

/* Reads exactly `length` bytes, waiting at most timeout_ms for each piece.
 * Returns 0, -EPIPE at end of file, -ETIMEDOUT, or -errno. */
int prism_iso_read(int fd, void *bytes, size_t length, int timeout_ms);

/* A mapping of the shared-memory file. */
typedef struct prism_iso_region {
  int fd;
  unsigned char *base; /* NULL while size is 0 */
  size_t size;
} prism_iso_region;

/* Makes the file and the mapping at least `size` bytes (growing the file
 * when needed). Returns 0 or -errno. */
int prism_iso_region_reserve(prism_iso_region *region, size_t size);

/* Remaps when the file grew past the mapping (the peer reserved more).
 * Returns 0 or -errno. */
int prism_iso_region_refresh(prism_iso_region *region);

void prism_iso_region_unmap(prism_iso_region *region);

/* Reaps `pid`: blocking (wait = 1) or not. Returns 1 when it ended
 * (*signal_number = the killing signal or 0, *exit_status = its status),
 * 0 when still running, -errno on error. */
int prism_iso_reap(pid_t pid, int wait, int *signal_number, int *exit_status);

/* SIGKILL to `pid`. */
void prism_iso_kill(pid_t pid);

/* Ends `pid`: waits up to `grace_ms` for it to exit by itself (0 = kill at
 * once), then SIGKILLs it, and reaps it. Sets *signal_number (the killing
 * signal or 0) and *exit_status as prism_iso_reap does. */
void prism_iso_end(pid_t pid, int grace_ms, int *signal_number, int *exit_status);

#endif
