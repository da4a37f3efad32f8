/* Process signals for command-line tools built on Prism: SIGINT and SIGTERM
 * set a flag that a training loop polls at its safe points, and wake a
 * watcher thread that says so at once. An embedding program keeps its own
 * signal policy and never calls this. */
#ifndef PRISM_SIGNALS_H
#define PRISM_SIGNALS_H

/* Installs handlers for SIGINT and SIGTERM and unblocks both on the calling
 * thread (a parent may start the process with them blocked). The first
 * signal sets the flag; a second one exits at once with status 128 + its
 * number (130 for SIGINT, 143 for SIGTERM). */
void prism_signals_install(void);

/* The number of the first signal since install (SIGINT = 2, SIGTERM = 15),
 * or 0. [async-signal-safe] */
int prism_signals_requested(void);

/* Waits up to `timeout_ms` (-1 = forever) for the first signal; returns its
 * number, or 0 when none came. For one watcher thread. */
int prism_signals_wait(int timeout_ms);

/* Blocks SIGINT and SIGTERM on the calling thread, so the handler runs on
 * another one (a watcher thread calls this for itself). */
void prism_signals_block_in_thread(void);

#endif
