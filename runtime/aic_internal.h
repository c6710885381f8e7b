/* aic_internal.h: what the runtime, the generated model description and the
 * generated kernels share inside one model .so. Not part of the public ABI. */
#ifndef AIC_INTERNAL_H
#define AIC_INTERNAL_H

#include "aic.h"

#include <errno.h>
#include <stdlib.h>

#define AIC_API __attribute__((visibility("default")))

/* The integer in environment variable `name`: 0 when it is unset or empty, 1 with *out set when it is a
 * whole decimal number in [lo, hi], -1 otherwise (*env is then the text, for the message). */
static inline int aic_env_long(const char *name, long lo, long hi, long *out, const char **env) {
    *env = getenv(name);
    if (*env == NULL || !**env) return 0;
    char *end;
    errno = 0;
    long value = strtol(*env, &end, 10);
    if (errno || *end || value < lo || value > hi) return -1;
    *out = value;
    return 1;
}

/* Written by runtime/model_asm.py into model.s (keep the layouts in step). */
typedef struct aic_symbol_info {
    const char *name;
    int64_t min, max, opt;
} aic_symbol_info;

typedef struct aic_model_info {
    const char *json;     /* returned by aic_signature() */
    const char *features; /* LLVM target features the kernels were compiled with, "+avx2,+fma,..." */
    const char *cpu;      /* LLVM CPU name, for messages */
    int num_inputs;
    int num_outputs;
    const aic_tensor_info *inputs;
    const aic_tensor_info *outputs;
    size_t arena_bytes;
    /* Per output: NULL when its shape is static, else `rank` entries: -1 for a static dim, or
     * the arena byte offset of the int64 that holds the dim's size after a run. */
    const int64_t *const *output_sizes;
    /* The kernels' error slot (compiler/lower/checks.py): the arena byte offset of four int64
     * (code, site, value, position), -1 when the model has no run-time checks; and the text of
     * each check site ("node 'g' (Gather): indices 'i' (axis 0 of size 5) must be in [-5, 4]"). */
    int64_t error_offset;
    const char *const *error_sites;
    int num_error_sites;
    /* Sizes given at run time (a model compiled for ranges of sizes): the symbols, the arena byte
     * offset of the int64 per symbol that kernels read (-1: none), and per input `rank` entries:
     * the static size (>= 0), or -1-k for symbol k. NULL/0 for a model of static shapes. */
    int num_symbols;
    int64_t dims_offset;
    const aic_symbol_info *symbols;
    const int64_t *const *input_dims;
} aic_model_info;

extern const aic_model_info aic_model_data;

/* The weight blob (an .incbin in model.s; one zero byte when the weights are in a side file). */
extern const unsigned char aic_weights[];

/* Written by runtime/model_asm.py: where the weights are. A side file (external != 0) is
 * <model .so name without .so>.weights next to the .so: the blob, then a 64-byte trailer
 * ("AICWGT01", nbytes, sha256), mapped by aic_weights.c when the .so is loaded. */
typedef struct aic_weights_info {
    int64_t external;
    int64_t nbytes;
    unsigned char sha256[32];
} aic_weights_info;

extern const aic_weights_info aic_weights_data;

/* The weights the kernels read, or NULL with *why set when the side file is missing or
 * does not belong to this .so (why may be NULL). */
const void *aic_weights_base(const char **why);

/* Memory of AIC_HUGE_BYTES or more (the weights, the arena) sits on 2 MiB transparent huge pages where the
 * kernel allows it: aic_huge_alloc returns 2 MiB-aligned zeroed memory advised MADV_HUGEPAGE, or NULL. */
#define AIC_HUGE_BYTES ((size_t)4 << 20)
void *aic_huge_alloc(size_t bytes);
void aic_huge_free(void *p, size_t bytes);

/* The generated entry: runs every kernel in order. */
void aic_entry(void *arena, const void *const *inputs, void *const *outputs, const void *weights);

/* Called by generated parallel loops: fn(closure, begin, end) over chunks of [0, n). */
typedef void (*aic_task_fn)(void *closure, int64_t begin, int64_t end);
void aic_parallel_for(aic_task_fn fn, void *closure, int64_t n);

/* Per-kernel timing: when aic_profiling is nonzero at the start of a run (some handle has
 * profiling on), the entry calls aic_profile_mark(call, 0) before and aic_profile_mark(call, 1)
 * after kernel call number `call` (program order, the index into the metadata's "kernel_calls"). */
extern int aic_profiling;
void aic_profile_mark(int32_t call, int32_t end);

#endif /* AIC_INTERNAL_H */
