/* Internal to the kernels: the shared thread pool. */
#ifndef PRISM_KERNELS_INTERNAL_H
#define PRISM_KERNELS_INTERNAL_H

typedef void (*pk_task_fn)(void *ctx, int task);

/* Runs fn(ctx, 0..tasks-1) on the pool and the calling thread; returns when
 * all are done. Not reentrant. */
void pk_parallel_for(int tasks, pk_task_fn fn, void *ctx);

#endif
