/* aic_runtime.c: the small runtime linked into every model .so.
 *
 * - The public ABI of aic.h: create / run / output shapes / signature / last error / destroy.
 *   A run holds the handle's run lock from the start of the kernels until the output shapes
 *   and the kernels' error slot are read; aic_destroy takes the same lock.
 * - A thread pool for generated parallel loops. aic_run wakes the workers when it starts;
 *   they spin (pause, yielding now and then) for the whole run, so no parallel loop of a run
 *   pays a wake-up, and for AIC_SPIN microseconds after it (default 2000), then sleep on
 *   a condition variable, so an idle model costs no CPU. aic_parallel_for gives each
 *   thread one contiguous range of [0, n), cut into chunks that shrink towards its end;
 *   a thread claims its own range's chunks first, then what is left of the others', so
 *   consecutive loops keep their data on the core that wrote it and the threads finish
 *   within a small chunk of each other; the caller never waits for a worker that has not
 *   started (on a busy machine it runs the chunks itself); nested parallel loops run
 *   serially inside their chunk.
 * - A load-time check that this CPU has the features the kernels were compiled for.
 */
#define _GNU_SOURCE
#include "aic_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* runtime/model_asm.py writes aic_model_data and its tables with this layout. */
_Static_assert(sizeof(void *) == 8, "aic models target 64-bit CPUs");
_Static_assert(offsetof(aic_tensor_info, rank) == 16 && offsetof(aic_tensor_info, shape) == 24 &&
                   offsetof(aic_tensor_info, nbytes) == 32 && sizeof(aic_tensor_info) == 40,
               "aic_tensor_info layout changed: update runtime/model_asm.py");
_Static_assert(offsetof(aic_model_info, num_inputs) == 24 && offsetof(aic_model_info, inputs) == 32 &&
                   offsetof(aic_model_info, arena_bytes) == 48 && offsetof(aic_model_info, output_sizes) == 56 &&
                   offsetof(aic_model_info, error_offset) == 64 && offsetof(aic_model_info, error_sites) == 72 &&
                   offsetof(aic_model_info, num_error_sites) == 80 && offsetof(aic_model_info, num_symbols) == 84 &&
                   offsetof(aic_model_info, dims_offset) == 88 && offsetof(aic_model_info, symbols) == 96 &&
                   offsetof(aic_model_info, input_dims) == 104 && sizeof(aic_model_info) == 112,
               "aic_model_info layout changed: update runtime/model_asm.py");

#define SPIN_ITERATIONS 4000 /* about 0.1 ms of pause instructions */
#define SPIN_CHECK 256         /* pauses between looks at the clock (and a sched_yield) */
#define DEFAULT_SPIN_US 2000   /* workers keep spinning this long after a run (AIC_SPIN) */
#define CHUNKS_PER_THREAD 8 /* claims per thread and job at most: big chunks first, then smaller */

static _Thread_local char last_error[512];
static _Thread_local struct aic_pool *current_pool; /* the pool of the model running on this thread */
static _Thread_local int inside_job;                /* nested parallel loops run serially */

#include "aic_tables.h"

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ------------------------------------------------------------------ thread pool */

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
static void aic_pool_enter(aic_pool *pool) {
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
static void aic_pool_leave(aic_pool *pool) {
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

static void pool_stop(aic_pool *pool, int started) {
    atomic_store_explicit(&pool->stop, 1, memory_order_release);
    post(pool);
    for (int i = 0; i < started; i++) pthread_join(pool->workers[i], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    free(pool->workers);
    free(pool->ranges);
}

static int pool_start(aic_pool *pool, int num_threads) {
    memset(pool, 0, sizeof *pool);
#if defined(__linux__)
    if (pthread_getaffinity_np(pthread_self(), sizeof pool->cpus, &pool->cpus) != 0) CPU_ZERO(&pool->cpus);
#endif
    pool->num_threads = num_threads;
    pool->spin_ns = DEFAULT_SPIN_US * 1000LL;
    const char *spin = getenv("AIC_SPIN");
    if (spin != NULL && *spin) {
        char *end;
        errno = 0;
        long us = strtol(spin, &end, 10);
        if (errno || *end || us < 0 || us > 10000000)
            return fail(AIC_ERROR_INVALID_ARGUMENT, "aic: AIC_SPIN='%s' is not a spin time in microseconds "
                        "(0..10000000)", spin);
        pool->spin_ns = us * 1000LL;
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    pool->workers = calloc((size_t)num_threads, sizeof(pthread_t));
    if (posix_memalign((void **)&pool->ranges, 64, (size_t)num_threads * sizeof(aic_range)) != 0) pool->ranges = NULL;
    else memset(pool->ranges, 0, (size_t)num_threads * sizeof(aic_range));
    if (pool->workers == NULL || pool->ranges == NULL) {
        pool_stop(pool, 0);
        return fail(AIC_ERROR_OUT_OF_MEMORY, "aic: cannot allocate a pool of %d threads", num_threads);
    }
    for (int i = 0; i < num_threads - 1; i++) {
        int err = pthread_create(&pool->workers[i], NULL, worker_main, pool);
        if (err != 0) {
            pool_stop(pool, i);
            return fail(AIC_ERROR_THREADS, "aic: cannot start worker thread %d of %d: %s", i + 1, num_threads - 1,
                        strerror(err));
        }
    }
    return AIC_OK;
}

/* ------------------------------------------------------------------ CPU features */

/* The first feature in `features` ("+avx2,+fma,...") this CPU lacks, or NULL. */
static const char *missing_feature(const char *features, char *buffer, size_t size) {
#if defined(__x86_64__)
    __builtin_cpu_init();
#define FEATURE(name) {name, __builtin_cpu_supports(name)}
    const struct {
        const char *name;
        int present;
    } known[] = {
        FEATURE("sse3"),     FEATURE("ssse3"),    FEATURE("sse4.1"),   FEATURE("sse4.2"),     FEATURE("popcnt"),
        FEATURE("avx"),      FEATURE("avx2"),     FEATURE("fma"),      FEATURE("bmi"),        FEATURE("bmi2"),
        FEATURE("avx512f"),  FEATURE("avx512vl"), FEATURE("avx512bw"), FEATURE("avx512dq"),   FEATURE("avx512cd"),
        FEATURE("avx512vnni"), FEATURE("avx512bf16"), FEATURE("avx512ifma"), FEATURE("avx512vbmi"),
        FEATURE("avx512vbmi2"), FEATURE("avx512bitalg"), FEATURE("avx512vpopcntdq"), FEATURE("avx512fp16"),
        FEATURE("avx512vp2intersect"), FEATURE("gfni"), FEATURE("vpclmulqdq"),
    };
#undef FEATURE
    for (const char *p = features; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 1 && p[0] == '+') {
            for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
                if (!known[i].present && strlen(known[i].name) == len - 1 && strncmp(known[i].name, p + 1, len - 1) == 0) {
                    snprintf(buffer, size, "%s", known[i].name);
                    return buffer;
                }
            }
        }
        p += len + (end != NULL);
    }
#else
    (void)features;
    (void)buffer;
    (void)size;
#endif
    return NULL;
}

/* ------------------------------------------------------------------ per-kernel timing */

typedef struct aic_profile {
    int on;
    aic_profile_event *events; /* the last run's, `count` of them */
    int64_t count, capacity;
    int open; /* events[count] holds a started call */
} aic_profile;

int aic_profiling; /* handles with profiling on; read by the generated entry at the start of each run */
static _Thread_local aic_profile *current_profile; /* the running model's, when its profiling is on */

static void profile_start(aic_profile *profile) {
    current_profile = profile->on ? profile : NULL;
    profile->count = 0;
    profile->open = 0;
}

void aic_profile_mark(int32_t call, int32_t end) {
    aic_profile *p = current_profile;
    if (p == NULL) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (end) {
        if (p->open && p->events[p->count].call == call) p->events[p->count++].end_ns = now;
        p->open = 0;
        return;
    }
    if (p->count == p->capacity) { /* a loop body's calls repeat: grow (events are dropped if that fails) */
        int64_t capacity = p->capacity ? 2 * p->capacity : 256;
        aic_profile_event *grown = realloc(p->events, (size_t)capacity * sizeof *grown);
        if (grown == NULL) return;
        p->events = grown;
        p->capacity = capacity;
    }
    p->events[p->count] = (aic_profile_event){call, 0, now, now};
    p->open = 1;
}

/* ------------------------------------------------------------------ public ABI */

struct aic_model {
    pthread_mutex_t run_lock;
    void *arena;
    aic_pool pool;
    int has_run; /* the sizes of data-dependent output dims are in the arena */
    aic_profile profile;
};


static int default_threads(int *out) {
    const char *env = getenv("AIC_NUM_THREADS");
    if (env != NULL && *env) {
        char *end;
        errno = 0;
        long n = strtol(env, &end, 10);
        if (errno || *end || n < 1 || n > 4096)
            return fail(AIC_ERROR_INVALID_ARGUMENT, "aic: AIC_NUM_THREADS='%s' is not a thread count (1..4096)", env);
        *out = (int)n;
        return AIC_OK;
    }
    cpu_set_t set;
    *out = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    if (*out < 1) *out = 1;
    return AIC_OK;
}

AIC_API aic_model *aic_create(int num_threads) {
    char missing[32];
    const char *why;
    if (aic_weights_base(&why) == NULL) {
        fail(AIC_ERROR_INVALID_ARGUMENT, "%s", why);
        return NULL;
    }
    if (missing_feature(aic_model_data.features, missing, sizeof missing)) {
        fail(AIC_ERROR_UNSUPPORTED_CPU,
             "aic: this model was compiled for CPU '%s' with feature +%s, which this CPU lacks; "
             "recompile it for this machine (target \"llvm\") or for a CPU it supports",
             aic_model_data.cpu, missing);
        return NULL;
    }
    if (num_threads <= 0 && default_threads(&num_threads) != AIC_OK) return NULL;
    aic_model *model = calloc(1, sizeof *model);
    if (model == NULL) {
        fail(AIC_ERROR_OUT_OF_MEMORY, "aic: out of memory creating a model");
        return NULL;
    }
    size_t arena = aic_model_data.arena_bytes;
    if (arena > 0 && posix_memalign(&model->arena, 64, (arena + 63) / 64 * 64) != 0) {
        fail(AIC_ERROR_OUT_OF_MEMORY, "aic: cannot allocate the %zu-byte scratch arena", arena);
        free(model);
        return NULL;
    }
    if (pool_start(&model->pool, num_threads) != AIC_OK) {
        free(model->arena);
        free(model);
        return NULL;
    }
    pthread_mutex_init(&model->run_lock, NULL);
    return model;
}

AIC_API int aic_num_threads(const aic_model *model) { return model ? model->pool.num_threads : 0; }

static int check_pointers(const void *const *list, int count, const aic_tensor_info *info, const char *kind) {
    for (int i = 0; i < count; i++) {
        if (info[i].nbytes > 0 && (list == NULL || list[i] == NULL))
            return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_run: %s %d ('%s') is NULL", kind, i, info[i].name);
    }
    return AIC_OK;
}

/* The actual shape of output i after the run that left `arena` (the run lock held). */
static void output_dims(const aic_model *model, int i, int64_t *dims) {
    const aic_tensor_info *info = &aic_model_data.outputs[i];
    const int64_t *sizes = aic_model_data.output_sizes ? aic_model_data.output_sizes[i] : NULL;
    for (int d = 0; d < info->rank; d++)
        dims[d] = sizes != NULL && sizes[d] >= 0 ? *(const int64_t *)((const char *)model->arena + sizes[d])
                                                 : info->shape[d];
}

#include "aic_kernel_error.h"

/* The error a kernel recorded in the error slot during the run (the run lock held). */
static int kernel_error(const aic_model *model) {
    return kernel_error_status((const int64_t *)((const char *)model->arena + aic_model_data.error_offset));
}

AIC_API int aic_run_shaped(aic_model *model, const void *const *inputs, void *const *outputs, int64_t *dims) {
    return aic_run_dims(model, NULL, inputs, outputs, dims);
}

AIC_API int aic_run_dims(aic_model *model, const int64_t *input_dims, const void *const *inputs, void *const *outputs,
                         int64_t *dims) {
    if (model == NULL) return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_run: the model is NULL");
    int64_t values[aic_model_data.num_symbols > 0 ? aic_model_data.num_symbols : 1];
    int status = symbol_values(input_dims, values);
    if (status != AIC_OK) return status;
    status = check_pointers(inputs, aic_model_data.num_inputs, aic_model_data.inputs, "input");
    if (status == AIC_OK)
        status = check_pointers((const void *const *)outputs, aic_model_data.num_outputs, aic_model_data.outputs,
                                "output");
    if (status != AIC_OK) return status;
    pthread_mutex_lock(&model->run_lock);
    int checked = aic_model_data.error_offset >= 0;
    if (checked) memset((char *)model->arena + aic_model_data.error_offset, 0, 4 * sizeof(int64_t));
    if (aic_model_data.dims_offset >= 0)
        memcpy((char *)model->arena + aic_model_data.dims_offset, values, aic_model_data.num_symbols * sizeof(int64_t));
    current_pool = &model->pool;
    aic_pool_enter(&model->pool);
    profile_start(&model->profile);
    aic_entry(model->arena, inputs, outputs, aic_weights_base(NULL));
    current_profile = NULL;
    aic_pool_leave(&model->pool);
    current_pool = NULL;
    model->has_run = 1;
    status = checked ? kernel_error(model) : AIC_OK;
    for (int i = 0; dims != NULL && i < aic_model_data.num_outputs; i++) {
        output_dims(model, i, dims);
        dims += aic_model_data.outputs[i].rank;
    }
    pthread_mutex_unlock(&model->run_lock);
    return status;
}

AIC_API int aic_run(aic_model *model, const void *const *inputs, void *const *outputs) {
    return aic_run_shaped(model, inputs, outputs, NULL);
}

AIC_API int aic_output_shape(aic_model *model, int i, int64_t *dims) {
    const aic_tensor_info *info = aic_output_info(i);
    if (model == NULL || dims == NULL)
        return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_output_shape: the model or dims is NULL");
    if (info == NULL)
        return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_output_shape: no output %d (the model has %d)", i,
                    aic_model_data.num_outputs);
    const int64_t *sizes = aic_model_data.output_sizes ? aic_model_data.output_sizes[i] : NULL;
    pthread_mutex_lock(&model->run_lock);
    int known = sizes == NULL || model->has_run;
    if (known) output_dims(model, i, dims);
    pthread_mutex_unlock(&model->run_lock);
    if (!known)
        return fail(AIC_ERROR_INVALID_ARGUMENT,
                    "aic_output_shape: output %d ('%s') has a data-dependent shape, known only after aic_run", i,
                    info->name);
    return AIC_OK;
}

AIC_API void aic_destroy(aic_model *model) {
    if (model == NULL) return;
    pthread_mutex_lock(&model->run_lock); /* waits for a run in progress */
    pool_stop(&model->pool, model->pool.num_threads - 1);
    pthread_mutex_unlock(&model->run_lock);
    aic_profile_enable(model, 0);
    free(model->profile.events);
    pthread_mutex_destroy(&model->run_lock);
    free(model->arena);
    free(model);
}

/* Per-kernel timing (see aic.h). */

AIC_API int aic_profile_enable(aic_model *model, int on) {
    if (model == NULL) return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_profile_enable: the model is NULL");
    pthread_mutex_lock(&model->run_lock);
    on = on != 0;
    if (on != model->profile.on) __atomic_add_fetch(&aic_profiling, on ? 1 : -1, __ATOMIC_RELAXED);
    model->profile.on = on;
    pthread_mutex_unlock(&model->run_lock);
    return AIC_OK;
}

AIC_API int64_t aic_profile_events(aic_model *model, const aic_profile_event **events) {
    if (model == NULL || events == NULL) {
        fail(AIC_ERROR_INVALID_ARGUMENT, "aic_profile_events: the model or events is NULL");
        return -1;
    }
    *events = model->profile.events;
    return model->profile.count;
}
