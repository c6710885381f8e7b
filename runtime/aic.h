/* aic.h: the C ABI of a model compiled by aic (one shared object per model).
 *
 * Every model .so exports the same functions. A typical use:
 *
 *     aic_model *m = aic_create(0);               // 0: AIC_NUM_THREADS, else all available CPUs
 *     if (!m) { fprintf(stderr, "%s\n", aic_last_error()); return 1; }
 *     const void *inputs[] = {x};                 // in aic_input_info(i) order, C-contiguous
 *     void *outputs[] = {y};                      // in aic_output_info(i) order, caller-allocated
 *     if (aic_run(m, inputs, outputs) != AIC_OK) fprintf(stderr, "%s\n", aic_last_error());
 *     aic_destroy(m);
 *
 * A model handle owns its scratch memory and thread pool. aic_run calls on one handle
 * are serialised; use one handle per thread to run concurrently. aic_destroy waits for a
 * run in progress; the caller must make sure no other aic_run on the handle starts after it.
 */
#ifndef AIC_H
#define AIC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AIC_ABI_VERSION 2

typedef enum aic_status {
    AIC_OK = 0,
    AIC_ERROR_INVALID_ARGUMENT = 1, /* a NULL model, input or output pointer; a bad AIC_NUM_THREADS */
    AIC_ERROR_OUT_OF_MEMORY = 2,    /* the scratch arena or the thread pool could not be allocated */
    AIC_ERROR_THREADS = 3,          /* a worker thread could not be started */
    AIC_ERROR_UNSUPPORTED_CPU = 4,  /* the model was compiled for CPU features this machine lacks */
    AIC_ERROR_KERNEL = 5,           /* a kernel met bad input data (an index out of range, ...); the outputs
                                     * are not valid; aic_last_error() names the node, op, value and position */
} aic_status;

typedef struct aic_tensor_info {
    const char *name;
    const char *dtype; /* "float32", "float16", "bfloat16", "float64", "int8".."int64", "uint8".."uint64", "bool" */
    int rank;
    const int64_t *shape; /* rank entries */
    size_t nbytes;        /* bytes of the whole tensor */
} aic_tensor_info;

typedef struct aic_model aic_model;

/* The ABI version the .so implements (AIC_ABI_VERSION when it was built). */
int aic_abi_version(void);

/* The model's signature and build facts as JSON: name, aic_version, target
 * (triple, cpu, features), inputs and outputs (name, dtype, shape; an output whose size
 * depends on the data adds "dynamic_dims": [[dim, symbol], ...], see aic_output_shape),
 * arena_bytes. */
const char *aic_signature(void);

int aic_num_inputs(void);
int aic_num_outputs(void);
/* Tensor descriptions, or NULL when i is out of range. */
const aic_tensor_info *aic_input_info(int i);
const aic_tensor_info *aic_output_info(int i);

/* Create a runnable instance with `num_threads` threads (the caller included);
 * num_threads <= 0 reads AIC_NUM_THREADS, else uses every CPU this process may run on.
 * Returns NULL on failure; aic_last_error() says why. */
aic_model *aic_create(int num_threads);

int aic_num_threads(const aic_model *model);

/* Run the model. inputs[i] / outputs[i] point to C-contiguous buffers of
 * aic_input_info(i)->nbytes / aic_output_info(i)->nbytes. Returns an aic_status:
 * AIC_ERROR_KERNEL when a kernel found an index out of range (ONNX calls that an error,
 * e.g. a Gather index outside its axis); the message names the node, the valid range, the
 * value and its position in the index tensor. */
int aic_run(aic_model *model, const void *const *inputs, void *const *outputs);

/* aic_run, then write every output's actual shape to `dims` (aic_output_info(0)->rank
 * entries, then output 1's, ...) before another run on the handle can start: the shapes of
 * data-dependent outputs belong to this run even when threads share the handle.
 * dims may be NULL. */
int aic_run_shaped(aic_model *model, const void *const *inputs, void *const *outputs, int64_t *dims);

/* Run a model compiled for ranges of sizes (`aic compile --shape batch=1..64`) at the actual input
 * sizes: input_dims holds aic_input_info(0)->rank dims, then input 1's, ... . Every dim is checked
 * before any kernel runs: a static dim must match, a symbolic one must lie in its symbol's range
 * ("symbols" in aic_signature(): name, min, max, opt) and agree with the other dims of the same
 * symbol; a bad dim returns AIC_ERROR_INVALID_ARGUMENT naming the input, dim, symbol and range.
 * Inputs are C-contiguous at their actual shapes; outputs are written C-contiguous at their actual
 * shapes (written to `dims` as by aic_run_shaped) at the start of each output buffer, which must hold
 * that many bytes (aic_output_info(i)->nbytes, the size at the largest dims, is always enough).
 * aic_run and aic_run_shaped run such a model at the largest sizes. input_dims NULL: the same. */
int aic_run_dims(aic_model *model, const int64_t *input_dims, const void *const *inputs, void *const *outputs,
                 int64_t *dims);

/* The actual shape of output i after the last aic_run on `model` (by any thread: threads
 * sharing a handle should use aic_run_shaped): aic_output_info(i)->rank
 * entries written to `dims`. Outputs whose size depends on the data (NonZero, Unique,
 * NonMaxSuppression, Compress with a run-time condition) have dims known only after a run:
 * aic_output_info(i)->shape holds their upper bounds (the buffer the caller allocates), and
 * the run writes the actual tensor C-contiguous at the start of that buffer. For other
 * outputs this copies aic_output_info(i)->shape. Returns AIC_ERROR_INVALID_ARGUMENT for a
 * NULL model or dims, an index out of range, or a data-dependent output before any run. */
int aic_output_shape(aic_model *model, int i, int64_t *dims);

/* Per-kernel timing, off by default (then it costs one flag test per kernel call).
 * aic_profile_enable(model, 1) makes each later aic_run on `model` record one event per kernel
 * call, in program order (a call inside a loop once per iteration); `call` indexes the
 * "kernel_calls" list of aic_signature(), times are CLOCK_MONOTONIC nanoseconds.
 * aic_profile_events points *events at the events of the last run and returns their count
 * (valid until the next run or aic_destroy). */
typedef struct aic_profile_event {
    int32_t call;
    int32_t reserved;
    int64_t start_ns;
    int64_t end_ns;
} aic_profile_event;

int aic_profile_enable(aic_model *model, int on);
int64_t aic_profile_events(aic_model *model, const aic_profile_event **events);

/* The message of the calling thread's last failure ("" if none). */
const char *aic_last_error(void);

void aic_destroy(aic_model *model);

/* A model compiled with `aic compile --symbol-prefix P` also exports every function above
 * as P_aic_* (aliases of the same code), so that several models link into one program:
 *     AIC_DECLARE_PREFIXED(resnet)      // declares resnet_aic_create, resnet_aic_run, ...
 *     aic_model *m = resnet_aic_create(0);
 * Link with the models' .so files and an rpath: cc main.c resnet.so bert.so -Wl,-rpath,'$ORIGIN' */
#define AIC_DECLARE_PREFIXED(P)                                                                       \
    int P##_aic_abi_version(void);                                                                    \
    const char *P##_aic_signature(void);                                                              \
    int P##_aic_num_inputs(void);                                                                     \
    int P##_aic_num_outputs(void);                                                                    \
    const aic_tensor_info *P##_aic_input_info(int i);                                                 \
    const aic_tensor_info *P##_aic_output_info(int i);                                                \
    aic_model *P##_aic_create(int num_threads);                                                       \
    int P##_aic_num_threads(const aic_model *model);                                                  \
    int P##_aic_run(aic_model *model, const void *const *inputs, void *const *outputs);               \
    int P##_aic_output_shape(aic_model *model, int i, int64_t *dims);                                 \
    int P##_aic_run_shaped(aic_model *model, const void *const *inputs, void *const *outputs, int64_t *dims); \
    int P##_aic_run_dims(aic_model *model, const int64_t *input_dims, const void *const *inputs,             \
                         void *const *outputs, int64_t *dims);                                                 \
    const char *P##_aic_last_error(void);                                                             \
    void P##_aic_destroy(aic_model *model);

#ifdef __cplusplus
}
#endif

#endif /* AIC_H */
