/* Process signals for command-line tools built on Prism: SIGINT and SIGTERM
 * set a flag that a training loop polls between steps. An embedding program
 * keeps its own signal policy and never calls this. */
#ifndef PRISM_SIGNALS_H
#define PRISM_SIGNALS_H

/* Installs handlers for SIGINT and SIGTERM and unblocks both on the calling
 * thread (a parent may start the process with them blocked). The first
 * signal sets the flag; a second one exits at once with status 130. */
void prism_signals_install(void);

/* 1 once SIGINT or SIGTERM arrived since install, else 0. [async-signal-safe] */
int prism_signals_requested(void);

#endif
