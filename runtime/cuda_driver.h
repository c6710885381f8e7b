/* cuda_driver.h: the CUDA driver API subset a cuda model .so calls, as a function table.
 *
 * runtime/cuda_runtime.c fills the table from libcuda.so.1 with dlopen/dlsym (exported,
 * ABI-suffixed names: cuMemAlloc_v2, ...), or takes one from aic_cuda_use_driver(): the
 * emulator (runtime/aic_cuda_emu.h) hands in its own functions, so the whole runtime runs
 * without a GPU. Types and constants are those of cuda.h (CUDA 12/13), declared here so
 * that the runtime builds with any C compiler and no CUDA headers. Also the tables the
 * generated launch plan (runtime/cuda_package.py) provides. Not part of the public ABI.
 */
#ifndef AIC_CUDA_DRIVER_H
#define AIC_CUDA_DRIVER_H

#include <stddef.h>
#include <stdint.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;

#define AIC_CU_ATTR_CC_MAJOR 75
#define AIC_CU_ATTR_CC_MINOR 76
#define AIC_CU_FUNC_MAX_DYNAMIC_SMEM 8
#define AIC_CU_STREAM_NON_BLOCKING 1
#define AIC_CU_CAPTURE_THREAD_LOCAL 1

/* One entry per driver function (all return CUresult): X(field, exported symbol, parameters). */
#define AIC_CUDA_DRIVER_FUNCTIONS(X)                                                                   \
    X(cuInit, "cuInit", (unsigned flags))                                                              \
    X(cuDriverGetVersion, "cuDriverGetVersion", (int *version))                                        \
    X(cuDeviceGetCount, "cuDeviceGetCount", (int *count))                                              \
    X(cuDeviceGet, "cuDeviceGet", (CUdevice * device, int ordinal))                                    \
    X(cuDeviceGetAttribute, "cuDeviceGetAttribute", (int *value, int attribute, CUdevice device))      \
    X(cuDeviceGetName, "cuDeviceGetName", (char *name, int len, CUdevice device))                      \
    X(cuGetErrorString, "cuGetErrorString", (CUresult error, const char **text))                       \
    X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", (CUcontext * ctx, CUdevice device))        \
    X(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", (CUdevice device))                    \
    X(cuCtxSetCurrent, "cuCtxSetCurrent", (CUcontext ctx))                                             \
    X(cuModuleLoadData, "cuModuleLoadData", (CUmodule * module, const void *image))                    \
    X(cuModuleGetFunction, "cuModuleGetFunction", (CUfunction * fn, CUmodule module, const char *name)) \
    X(cuModuleUnload, "cuModuleUnload", (CUmodule module))                                             \
    X(cuFuncSetAttribute, "cuFuncSetAttribute", (CUfunction fn, int attribute, int value))             \
    X(cuMemAlloc, "cuMemAlloc_v2", (CUdeviceptr * ptr, size_t bytes))                                  \
    X(cuMemFree, "cuMemFree_v2", (CUdeviceptr ptr))                                                    \
    X(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", (CUdeviceptr dst, const void *src, size_t n, CUstream s)) \
    X(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2", (void *dst, CUdeviceptr src, size_t n, CUstream s))   \
    X(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2", (CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s)) \
    X(cuStreamCreate, "cuStreamCreate", (CUstream * stream, unsigned flags))                           \
    X(cuStreamDestroy, "cuStreamDestroy_v2", (CUstream stream))                                        \
    X(cuStreamSynchronize, "cuStreamSynchronize", (CUstream stream))                                   \
    X(cuLaunchKernel, "cuLaunchKernel",                                                                \
      (CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,    \
       unsigned smem, CUstream stream, void **params, void **extra))                                   \
    X(cuStreamBeginCapture, "cuStreamBeginCapture_v2", (CUstream stream, int mode))                    \
    X(cuStreamEndCapture, "cuStreamEndCapture", (CUstream stream, CUgraph * graph))                    \
    X(cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags",                                      \
      (CUgraphExec * exec, CUgraph graph, unsigned long long flags))                                   \
    X(cuGraphLaunch, "cuGraphLaunch", (CUgraphExec exec, CUstream stream))                             \
    X(cuGraphExecDestroy, "cuGraphExecDestroy", (CUgraphExec exec))                                    \
    X(cuGraphDestroy, "cuGraphDestroy", (CUgraph graph))

#define AIC_CUDA_FIELD(field, symbol, params) CUresult (*field) params;
typedef struct aic_cuda_driver {
    AIC_CUDA_DRIVER_FUNCTIONS(AIC_CUDA_FIELD)
} aic_cuda_driver;
#undef AIC_CUDA_FIELD

/* ---- the launch plan, written by runtime/cuda_package.py into plan.c */

enum { AIC_ARG_ARENA = 0, AIC_ARG_INPUT = 1, AIC_ARG_OUTPUT = 2, AIC_ARG_WEIGHT = 3, AIC_ARG_ROW = 4,
       AIC_ARG_CONST = 5, AIC_ARG_NONE = 6 };

typedef struct aic_cuda_arg {
    int kind;      /* AIC_ARG_* */
    int64_t value; /* byte offset (arena, weight), tensor index (input, output), index into rows (row), a constant */
} aic_cuda_arg;

/* A loop's scan slice: row i of `base` (an index into args), i = the counter's value (length - 1 - it when reverse). */
typedef struct aic_cuda_row {
    int base;
    aic_cuda_arg counter;
    int64_t row_bytes, length;
    int reverse;
} aic_cuda_row;

enum { AIC_STEP_LAUNCH = 0, AIC_STEP_IF = 1, AIC_STEP_LOOP = 2 };

/* The host program in pre-order; an If/Loop's body entries follow it. */
typedef struct aic_cuda_step {
    int kind;
    int launch;    /* launch: index into launches */
    int then_size; /* if: entries of the then branch; the else branch follows */
    int size;      /* if/loop: entries of the whole body */
    aic_cuda_arg cond, counter, trips; /* AIC_ARG_NONE when absent */
} aic_cuda_step;

typedef struct aic_cuda_kernel {
    const char *name;
    unsigned grid[3], block[3];
    unsigned smem_bytes;
    unsigned long long aligned16; /* bit i: argument i is accessed as 16-byte vectors (must be 16-byte aligned) */
    /* NULL, or: writes the grid sizes that are run-time sizes (a model compiled for ranges of sizes)
     * from the symbols' values (aic_model_info.symbols order) */
    void (*grid_of)(const int64_t *dims, int64_t *grid);
} aic_cuda_kernel;

typedef struct aic_cuda_launch {
    int kernel;    /* index into kernels */
    int first_arg; /* index into args */
    int num_args;
} aic_cuda_launch;

typedef struct aic_cuda_image {
    int arch;    /* 80 for sm_80; for PTX the virtual architecture it targets */
    int is_ptx;  /* 0: cubin, 1: PTX text (NUL-terminated) */
    const unsigned char *data;
    size_t size;
} aic_cuda_image;

typedef struct aic_cuda_plan {
    int num_kernels, num_launches, num_images, num_steps, num_args;
    const aic_cuda_kernel *kernels;
    const aic_cuda_launch *launches;
    const aic_cuda_arg *args;
    const aic_cuda_image *images;
    const aic_cuda_step *steps;
    const aic_cuda_row *rows;
    int has_control; /* If/Loop steps: the run reads flags from the device, so no CUDA graph */
    size_t weight_bytes;
    const char *source; /* the CUDA C the images were compiled from (the emulator builds it) */
    /* A model compiled for ranges of sizes: writes every output's dims (output 0's, then 1's, ...) from the
     * symbols' values; NULL for static shapes. */
    void (*output_dims)(const int64_t *dims, int64_t *out);
} aic_cuda_plan;

extern const aic_cuda_plan aic_cuda_plan_data;

#endif /* AIC_CUDA_DRIVER_H */
