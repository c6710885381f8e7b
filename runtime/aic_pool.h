/* aic_pool.h: the thread pool of a model handle, for generated parallel loops (aic_pool.c). */
#ifndef AIC_POOL_H
#define AIC_POOL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_getaffinity_np, cpu_set_t */
#endif
#include "aic_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>

/* A job's n iterations are cut into one contiguous range per thread (range r: [n r / T, n (r+1) / T)), each in
 * chunks that shrink along the range. Thread r claims its own range's chunks first, from the front, then the
 * other ranges' remaining chunks. So a thread meets the same iterations in consecutive loops of the same size
 * (the data it wrote last loop is in its own cache), its claims touch a cache line no other thread writes
 * until it steals, and the threads still finish within a small chunk of each other. A range is claimed
 * through its own 64-bit word: job (32 bits) | chunk count (16) | next chunk (16). A worker that wakes late
 * sees another job in the words and claims nothing, so the caller never waits for a worker that did not
 * start: it runs the chunks nobody claimed and waits only for chunks in flight. */
#define NEXT_BITS 16
#define NEXT_MASK ((1ull << NEXT_BITS) - 1)

typedef struct aic_range {
    _Alignas(64) atomic_ullong word; /* job | chunks | next chunk; one cache line per range */
} aic_range;

typedef struct aic_pool {
    int num_threads; /* the caller included */
    pthread_t *workers;
    aic_range *ranges; /* num_threads of them */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t done;
    atomic_int stop;
    atomic_int running;        /* a run is under way: workers spin instead of sleeping */
    atomic_llong spin_until;   /* after a run, workers spin until this time (ns, CLOCK_MONOTONIC) */
    atomic_int sleepers;       /* workers waiting on `wake` */
    atomic_int waiting;        /* the caller waits on `done` */
    atomic_int started;        /* workers that took their range index */
#if defined(__linux__)
    cpu_set_t cpus;            /* the CPUs the workers may use (the creating thread's affinity) */
#endif
    long long spin_ns;
    char line_a[64]; /* what follows is written once per job and read by all threads while it runs */
    atomic_uint generation; /* the current job (bumped to post one, or to stop) */
    aic_task_fn fn; /* the current job; stable while any of its chunks is unfinished */
    void *closure;
    int64_t n;
    char line_b[64];
    atomic_llong unfinished; /* chunks of the current job not yet done; each thread writes it once per job */
    char line_c[64];
} aic_pool;

/* Start num_threads - 1 workers; AIC_OK, or an aic status with the reason in why[size]. */
int aic_pool_start(aic_pool *pool, int num_threads, char *why, size_t size);
/* Stop the first `started` workers and free the pool. */
void aic_pool_stop(aic_pool *pool, int started);
/* A run starts on this thread: its parallel loops use `pool`, whose sleeping workers wake now. */
void aic_pool_enter(aic_pool *pool);
/* The run ends: the workers spin on for the spin time, then sleep. */
void aic_pool_leave(aic_pool *pool);

#endif /* AIC_POOL_H */
