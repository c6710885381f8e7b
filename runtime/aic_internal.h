/* aic_internal.h: what the runtime, the generated model description and the
 * generated kernels share inside one model .so. Not part of the public ABI. */
#ifndef AIC_INTERNAL_H
#define AIC_INTERNAL_H

#include "aic.h"

#define AIC_API __attribute__((visibility("default")))

/* Written by runtime/model_asm.py into model.s (keep the layouts in step). */
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
} aic_model_info;

extern const aic_model_info aic_model_data;

/* The weight blob (an .incbin in model.s). */
extern const unsigned char aic_weights[];

/* The generated entry: runs every kernel in order. */
void aic_entry(void *arena, const void *const *inputs, void *const *outputs, const void *weights);

/* Called by generated parallel loops: fn(closure, begin, end) over chunks of [0, n). */
typedef void (*aic_task_fn)(void *closure, int64_t begin, int64_t end);
void aic_parallel_for(aic_task_fn fn, void *closure, int64_t n);

#endif /* AIC_INTERNAL_H */
