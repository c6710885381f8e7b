/* aic_runtime.c: the small runtime linked into every model .so.
 *
 * - The public ABI of aic.h: create / run / output shapes / signature / last error / destroy.
 *   A run holds the handle's run lock from the start of the kernels until the output shapes
 *   and the kernels' error slot are read; aic_destroy takes the same lock.
 * - A thread pool for generated parallel loops (aic_pool.c). aic_run wakes the workers when it starts;
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
#include "aic_pool.h"

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


static _Thread_local char last_error[512];

#include "aic_tables.h"

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
    const char *env;
    long n;
    int found = aic_env_long("AIC_NUM_THREADS", 1, 4096, &n, &env);
    if (found < 0)
        return fail(AIC_ERROR_INVALID_ARGUMENT, "aic: AIC_NUM_THREADS='%s' is not a thread count (1..4096)", env);
    if (found) {
        *out = (int)n;
        return AIC_OK;
    }
    cpu_set_t set;
    *out = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    if (*out < 1) *out = 1;
    return AIC_OK;
}

static void free_arena(void *arena) {
    if (aic_model_data.arena_bytes >= AIC_HUGE_BYTES)
        aic_huge_free(arena, aic_model_data.arena_bytes);
    else
        free(arena);
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
    if (arena >= AIC_HUGE_BYTES)
        model->arena = aic_huge_alloc(arena);
    else if (arena > 0 && posix_memalign(&model->arena, 64, (arena + 63) / 64 * 64) != 0)
        model->arena = NULL;
    if (arena > 0 && model->arena == NULL) {
        fail(AIC_ERROR_OUT_OF_MEMORY, "aic: cannot allocate the %zu-byte scratch arena", arena);
        free(model);
        return NULL;
    }
    char reason[256];
    int status = aic_pool_start(&model->pool, num_threads, reason, sizeof reason);
    if (status != AIC_OK) {
        fail(status, "%s", reason);
        free_arena(model->arena);
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
    aic_pool_enter(&model->pool);
    profile_start(&model->profile);
    aic_entry(model->arena, inputs, outputs, aic_weights_base(NULL));
    current_profile = NULL;
    aic_pool_leave(&model->pool);
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
    aic_pool_stop(&model->pool, model->pool.num_threads - 1);
    pthread_mutex_unlock(&model->run_lock);
    aic_profile_enable(model, 0);
    free(model->profile.events);
    pthread_mutex_destroy(&model->run_lock);
    free_arena(model->arena);
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
