/* aic_pool.c: the thread pool for generated parallel loops (see aic_runtime.c for the policy and
 * aic_pool.h for the ranges each thread claims). */
#include "aic_pool.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SPIN_ITERATIONS 4000 /* about 0.1 ms of pause instructions */
#define SPIN_CHECK 256         /* pauses between looks at the clock (and a sched_yield) */
#define DEFAULT_SPIN_US 2000   /* workers keep spinning this long after a run (AIC_SPIN) */
#define CHUNKS_PER_THREAD 8 /* claims per thread and job at most: big chunks first, then smaller */

static _Thread_local aic_pool *current_pool; /* the pool of the model running on this thread */
static _Thread_local int inside_job;         /* nested parallel loops run serially */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}


static _Thread_local int range_index; /* this thread's own range: 0 for the caller, 1.. for the workers */

/* Where chunk c of `count` starts in [0, n). With at least two iterations per chunk the sizes shrink
 * linearly (chunk c covers n * ((count-c)^2 - (count-c-1)^2) / count^2 iterations): the first claims take
 * big chunks, the last ones a few iterations, so a thread that claims late or runs slower (a shared core)
 * holds up the others by a small chunk only, for the same number of claims as equal chunks. */
static int64_t chunk_begin(int64_t c, int64_t count, int64_t n) {
    if (n < 2 * count) {
        int64_t per = n / count, extra = n % count;
        return c * per + (c < extra ? c : extra);
    }
    unsigned __int128 left = (unsigned __int128)(count - c) * (unsigned __int128)(count - c);
    return n - (int64_t)(left * (unsigned __int128)n / ((unsigned __int128)count * (unsigned __int128)count));
}

static int64_t range_begin(int64_t r, int64_t threads, int64_t n) {
    return (int64_t)((unsigned __int128)n * (unsigned __int128)r / (unsigned __int128)threads);
}

/* Claim and run the chunks of range r that belong to `job`; returns how many it ran. */
static long long run_range(aic_pool *pool, unsigned job, int r) {
    atomic_ullong *word = &pool->ranges[r].word;
    unsigned long long w = atomic_load_explicit(word, memory_order_acquire);
    long long ran = 0;
    for (;;) {
        unsigned long long count = (w >> NEXT_BITS) & NEXT_MASK, c = w & NEXT_MASK;
        if ((unsigned)(w >> 32) != job || c >= count) return ran;
        if (!atomic_compare_exchange_weak_explicit(word, &w, w + 1, memory_order_acquire, memory_order_acquire))
            continue;
        /* The claim pins the job: it cannot end, nor the next be posted, before this chunk is done. */
        int64_t rb = range_begin(r, pool->num_threads, pool->n), re = range_begin(r + 1, pool->num_threads, pool->n);
        int64_t begin = rb + chunk_begin((int64_t)c, (int64_t)count, re - rb);
        int64_t end = rb + chunk_begin((int64_t)c + 1, (int64_t)count, re - rb);
        if (end > begin) pool->fn(pool->closure, begin, end);
        ran++;
        w = atomic_load_explicit(word, memory_order_acquire);
    }
}

/* Run this thread's own range, then whatever the others left unclaimed. The chunks it ran are subtracted from
 * `unfinished` once, at the end: one write to the shared counter per thread and job, not one per chunk (a step
 * of a recurrent layer is a job of a few microseconds). */
static void run_chunks(aic_pool *pool, unsigned job) {
    int threads = pool->num_threads;
    long long ran = 0;
    for (int k = 0; k < threads; k++) ran += run_range(pool, job, (range_index + k) % threads);
    /* seq_cst with the caller's store of `waiting`: it sees the count reach zero, or is signalled */
    if (ran > 0 && atomic_fetch_sub(&pool->unfinished, ran) == ran && atomic_load(&pool->waiting)) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_signal(&pool->done);
        pthread_mutex_unlock(&pool->lock);
    }
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Whether a worker should keep spinning: during a run, and for the spin time after it. */
static int keep_spinning(aic_pool *pool) {
    return atomic_load_explicit(&pool->running, memory_order_acquire) ||
           now_ns() < atomic_load_explicit(&pool->spin_until, memory_order_relaxed);
}

/* A worker woken by a run would land, by the scheduler's wake-affine placement, on the CPU of the thread that
 * woke it: the caller's, which is busy running the model. It then waits there until the caller's time slice
 * ends or a load balancer moves it (milliseconds), so two threads ran no faster than one after idle gaps.
 * So the caller, before waking sleeping workers, takes its own CPU out of their affinity: the scheduler must
 * place them on another (idle) CPU at once. Each worker restores its affinity as soon as it runs. */
static void steer_off_caller_cpu(aic_pool *pool) {
#if defined(__linux__)
    int caller = sched_getcpu();
    cpu_set_t others = pool->cpus;
    if (caller < 0 || !CPU_ISSET(caller, &others)) return;
    CPU_CLR(caller, &others);
    if (CPU_COUNT(&others) == 0) return;
    for (int i = 0; i < pool->num_threads - 1; i++) pthread_setaffinity_np(pool->workers[i], sizeof others, &others);
#else
    (void)pool;
#endif
}

static void restore_affinity(aic_pool *pool) {
#if defined(__linux__)
    pthread_setaffinity_np(pthread_self(), sizeof pool->cpus, &pool->cpus);
#else
    (void)pool;
#endif
}

static unsigned wait_for_job(aic_pool *pool, unsigned seen) {
    for (;;) {
        for (int i = 0; i < SPIN_ITERATIONS || keep_spinning(pool); i += SPIN_CHECK) {
            for (int j = 0; j < SPIN_CHECK; j++) {
                unsigned g = atomic_load_explicit(&pool->generation, memory_order_acquire);
                if (g != seen) return g;
                cpu_relax();
            }
            if (i >= SPIN_ITERATIONS) sched_yield(); /* let a thread that shares this CPU run */
        }
        pthread_mutex_lock(&pool->lock);
        unsigned g;
        atomic_fetch_add(&pool->sleepers, 1); /* seq_cst, as the stores and loads of aic_pool_enter */
        while ((g = atomic_load(&pool->generation)) == seen && !atomic_load(&pool->running))
            pthread_cond_wait(&pool->wake, &pool->lock);
        atomic_fetch_sub_explicit(&pool->sleepers, 1, memory_order_acq_rel);
        pthread_mutex_unlock(&pool->lock);
        restore_affinity(pool);
        if (g != seen) return g;
    }
}

/* A run starts: sleeping workers wake now, so they are up (and placed) before the first parallel loop. */
void aic_pool_enter(aic_pool *pool) {
    current_pool = pool;
    if (pool->num_threads == 1) return;
    atomic_store(&pool->running, 1); /* seq_cst: a worker going to sleep sees it, or is counted below */
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        if (atomic_load(&pool->sleepers) == pool->num_threads - 1) /* all asleep: none runs on the caller's CPU */
            steer_off_caller_cpu(pool);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
}

/* A run ends: workers spin on for the spin time, then sleep. */
void aic_pool_leave(aic_pool *pool) {
    current_pool = NULL;
    if (pool->num_threads == 1) return;
    atomic_store_explicit(&pool->spin_until, now_ns() + pool->spin_ns, memory_order_relaxed);
    atomic_store_explicit(&pool->running, 0, memory_order_release);
}

static void *worker_main(void *arg) {
    aic_pool *pool = arg;
    unsigned seen = 0;
    inside_job = 1;
    range_index = atomic_fetch_add_explicit(&pool->started, 1, memory_order_relaxed) + 1;
    for (;;) {
        seen = wait_for_job(pool, seen);
        if (atomic_load_explicit(&pool->stop, memory_order_acquire)) return NULL;
        run_chunks(pool, seen);
    }
}

/* Post a job; the lock and the broadcast only when a worker sleeps (seq_cst with a worker going to sleep:
 * it sees the new generation, or is counted in `sleepers` here). */
static void post(aic_pool *pool) {
    atomic_fetch_add(&pool->generation, 1);
    if (atomic_load(&pool->sleepers) == 0) return;
    pthread_mutex_lock(&pool->lock);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
}

void aic_parallel_for(aic_task_fn fn, void *closure, int64_t n) {
    aic_pool *pool = current_pool;
    if (n <= 0) return;
    if (pool == NULL || pool->num_threads == 1 || n == 1 || inside_job) {
        fn(closure, 0, n);
        return;
    }
    /* The caller alone writes the ranges and the job; no thread claims a chunk between the end of one job
     * (`unfinished` reached 0) and the post of the next, and the post's release makes them visible. */
    unsigned job = atomic_load_explicit(&pool->generation, memory_order_relaxed) + 1;
    int64_t chunks = 0;
    for (int r = 0; r < pool->num_threads; r++) {
        int64_t length = range_begin(r + 1, pool->num_threads, n) - range_begin(r, pool->num_threads, n);
        int64_t count = length < CHUNKS_PER_THREAD ? length : CHUNKS_PER_THREAD;
        chunks += count;
        atomic_store_explicit(&pool->ranges[r].word, ((unsigned long long)job << 32) | ((unsigned long long)count << NEXT_BITS),
                              memory_order_relaxed);
    }
    pool->fn = fn;
    pool->closure = closure;
    pool->n = n;
    atomic_store_explicit(&pool->unfinished, chunks, memory_order_relaxed);
    post(pool);
    inside_job = 1;
    range_index = 0;
    run_chunks(pool, job);
    inside_job = 0;
    for (int i = 0; i < SPIN_ITERATIONS && atomic_load_explicit(&pool->unfinished, memory_order_acquire) > 0; i++)
        cpu_relax();
    if (atomic_load_explicit(&pool->unfinished, memory_order_acquire) > 0) {
        pthread_mutex_lock(&pool->lock);
        atomic_store(&pool->waiting, 1); /* seq_cst with the last chunk's count in run_chunks */
        while (atomic_load(&pool->unfinished) > 0) pthread_cond_wait(&pool->done, &pool->lock);
        atomic_store(&pool->waiting, 0);
        pthread_mutex_unlock(&pool->lock);
    }
}

void aic_pool_stop(aic_pool *pool, int started) {
    atomic_store_explicit(&pool->stop, 1, memory_order_release);
    post(pool);
    for (int i = 0; i < started; i++) pthread_join(pool->workers[i], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    free(pool->workers);
    free(pool->ranges);
}

/* Write the reason for `status` into why[size] and return status. */
static int refuse(int status, char *why, size_t size, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(why, size, format, args);
    va_end(args);
    return status;
}

int aic_pool_start(aic_pool *pool, int num_threads, char *why, size_t size) {
    memset(pool, 0, sizeof *pool);
#if defined(__linux__)
    if (pthread_getaffinity_np(pthread_self(), sizeof pool->cpus, &pool->cpus) != 0) CPU_ZERO(&pool->cpus);
#endif
    pool->num_threads = num_threads;
    long us = DEFAULT_SPIN_US;
    const char *spin;
    if (aic_env_long("AIC_SPIN", 0, 10000000, &us, &spin) < 0)
        return refuse(AIC_ERROR_INVALID_ARGUMENT, why, size, "aic: AIC_SPIN='%s' is not a spin time in microseconds "
                      "(0..10000000)", spin);
    pool->spin_ns = us * 1000LL;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    pool->workers = calloc((size_t)num_threads, sizeof(pthread_t));
    if (posix_memalign((void **)&pool->ranges, 64, (size_t)num_threads * sizeof(aic_range)) != 0) pool->ranges = NULL;
    else memset(pool->ranges, 0, (size_t)num_threads * sizeof(aic_range));
    if (pool->workers == NULL || pool->ranges == NULL) {
        aic_pool_stop(pool, 0);
        return refuse(AIC_ERROR_OUT_OF_MEMORY, why, size, "aic: cannot allocate a pool of %d threads", num_threads);
    }
    for (int i = 0; i < num_threads - 1; i++) {
        int err = pthread_create(&pool->workers[i], NULL, worker_main, pool);
        if (err != 0) {
            aic_pool_stop(pool, i);
            return refuse(AIC_ERROR_THREADS, why, size, "aic: cannot start worker thread %d of %d: %s", i + 1, num_threads - 1,
                        strerror(err));
        }
    }
    return AIC_OK;
}
