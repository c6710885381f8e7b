/* cuda_runtime.c: the runtime of a model compiled for the cuda target (one .so per model).
 *
 * Implements runtime/aic.h (host pointers in and out) plus device-pointer entry points.
 * aic_create dlopens libcuda.so.1 (the .so links only libc/libdl/libpthread), takes the
 * device's primary context (the one cupy and torch use), loads the cubin built for the
 * device's architecture (else JIT-loads the PTX), uploads the weights once, allocates one
 * device arena plus one device buffer per input and output, and creates a stream.
 * aic_run copies the inputs in, launches the plan's kernels in order, copies the outputs
 * out, reads the kernels' error slot (an index out of range fails the run with
 * AIC_ERROR_KERNEL, as on the CPU) and, in aic_run_shaped, the output shapes, all under the
 * run lock; from the second run on it replays the launches as a CUDA graph captured once
 * (AIC_CUDA_GRAPHS=0 turns that off). aic_cuda_use_driver() swaps the driver table, which
 * is how the emulator (runtime/aic_cuda_emu.h) runs this same code without a GPU.
 *
 * A model compiled for ranges of sizes: aic_run_dims checks the input dims (symbol_values,
 * aic_tables.h, as on the CPU), copies the symbols' values into the arena's dims slot before the
 * launches, computes each run-time grid size from them (aic_cuda_kernel.grid_of), copies inputs
 * and outputs at their actual sizes (aic_cuda_plan.output_dims), and replays a CUDA
 * graph only at the sizes it was captured at (a graph's grids are fixed: see launch_graph).
 */
#define _GNU_SOURCE
#include "aic_internal.h"
#include "cuda_driver.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[768];
static _Thread_local const aic_cuda_driver *driver_override;

#include "aic_tables.h"

struct aic_model {
    pthread_mutex_t run_lock;
    aic_cuda_driver drv;
    void *libcuda;
    CUdevice device;
    CUcontext context;
    CUmodule module;
    CUstream stream;
    CUfunction *functions;
    CUdeviceptr arena, weights;
    CUdeviceptr *inputs, *outputs; /* device buffers for the host-pointer entry */
    CUdeviceptr *argvals;          /* one per plan argument */
    void **argptrs;
    CUgraph graph;
    CUgraphExec graph_exec;
    int64_t *dims, *prev_dims; /* the symbols' values of this run and of the run before */
    int runs, graphs;
    char arch[32];
};

static int cuda_error(aic_model *m, CUresult r, const char *what) {
    const char *text = NULL;
    if (m->drv.cuGetErrorString == NULL || m->drv.cuGetErrorString(r, &text) != 0 || text == NULL) text = "?";
    return fail(AIC_ERROR_INVALID_ARGUMENT, "aic: CUDA error %d (%s) in %s", r, text, what);
}

#define CHECK(m, call, what)                                      \
    do {                                                          \
        CUresult r_ = (call);                                     \
        if (r_ != 0) return cuda_error((m), r_, (what));          \
    } while (0)

/* Use `table` instead of libcuda for the next aic_create / aic_cuda_create on this thread. */
AIC_API void aic_cuda_use_driver(const aic_cuda_driver *table) { driver_override = table; }

static int load_driver(aic_model *m) {
    if (driver_override != NULL) {
        m->drv = *driver_override;
        driver_override = NULL;
        return AIC_OK;
    }
    m->libcuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (m->libcuda == NULL) return fail(AIC_ERROR_UNSUPPORTED_CPU, "no CUDA driver (libcuda.so.1) on this machine");
#define AIC_CUDA_LOAD(field, symbol, params)                                                              \
    *(void **)&m->drv.field = dlsym(m->libcuda, symbol);                                                  \
    if (m->drv.field == NULL)                                                                             \
        return fail(AIC_ERROR_UNSUPPORTED_CPU, "the CUDA driver (libcuda.so.1) lacks %s: it is too old for this model", \
                    symbol);
    AIC_CUDA_DRIVER_FUNCTIONS(AIC_CUDA_LOAD)
#undef AIC_CUDA_LOAD
    return AIC_OK;
}

/* The image for compute capability major.minor: the newest cubin of the same major that is not newer,
 * else the PTX (JIT-compiled by the driver) when its architecture is not newer than the device. */
static const aic_cuda_image *pick_image(int major, int minor) {
    const aic_cuda_plan *p = &aic_cuda_plan_data;
    const aic_cuda_image *best = NULL, *ptx = NULL;
    int cc = major * 10 + minor;
    for (int i = 0; i < p->num_images; i++) {
        const aic_cuda_image *im = &p->images[i];
        if (im->is_ptx) {
            if (im->arch <= cc && (ptx == NULL || im->arch > ptx->arch)) ptx = im;
        } else if (im->arch / 10 == major && im->arch <= cc && (best == NULL || im->arch > best->arch)) {
            best = im;
        }
    }
    return best ? best : ptx;
}

static int image_list(char *out, size_t size) {
    const aic_cuda_plan *p = &aic_cuda_plan_data;
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; i < p->num_images && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s_%d", i ? ", " : "",
                                 p->images[i].is_ptx ? "compute" : "sm", p->images[i].arch);
    return 0;
}

typedef struct run_ctx {
    aic_model *m;
    CUstream stream;
    const CUdeviceptr *ins, *outs;
    const int64_t *dims; /* the symbols' values (a model compiled for ranges of sizes) */
    int depth;
    const aic_cuda_arg *counters[16]; /* the loops running now, innermost last, with their iteration */
    int64_t iteration[16];
} run_ctx;

static int read_device(run_ctx *c, CUdeviceptr src, void *dst, size_t n) {
    CHECK(c->m, c->m->drv.cuMemcpyDtoHAsync(dst, src, n, c->stream), "reading a control value");
    CHECK(c->m, c->m->drv.cuStreamSynchronize(c->stream), "reading a control value");
    return AIC_OK;
}

static int arg_pointer(run_ctx *c, const aic_cuda_arg *a, CUdeviceptr *out);

static int counter_value(run_ctx *c, const aic_cuda_arg *counter, int64_t *value) {
    for (int d = c->depth - 1; d >= 0; d--)
        if (c->counters[d]->kind == counter->kind && c->counters[d]->value == counter->value) {
            *value = c->iteration[d];
            return AIC_OK;
        }
    CUdeviceptr p;
    int status = arg_pointer(c, counter, &p);
    return status != AIC_OK ? status : read_device(c, p, value, sizeof *value);
}

static int arg_pointer(run_ctx *c, const aic_cuda_arg *a, CUdeviceptr *out) {
    const aic_model *m = c->m;
    switch (a->kind) {
    case AIC_ARG_ARENA: *out = m->arena + (CUdeviceptr)a->value; return AIC_OK;
    case AIC_ARG_WEIGHT: *out = m->weights + (CUdeviceptr)a->value; return AIC_OK;
    case AIC_ARG_INPUT: *out = c->ins[a->value]; return AIC_OK;
    case AIC_ARG_OUTPUT: *out = c->outs[a->value]; return AIC_OK;
    case AIC_ARG_ROW: {
        const aic_cuda_row *row = &aic_cuda_plan_data.rows[a->value];
        CUdeviceptr base;
        int64_t i;
        int status = arg_pointer(c, &aic_cuda_plan_data.args[row->base], &base);
        if (status == AIC_OK) status = counter_value(c, &row->counter, &i);
        if (status != AIC_OK) return status;
        if (row->reverse) i = row->length - 1 - i;
        if (i < 0 || i >= row->length)
            return fail(AIC_ERROR_INVALID_ARGUMENT, "aic: scan row %lld outside 0..%lld", (long long)i,
                        (long long)row->length - 1);
        *out = base + (CUdeviceptr)(i * row->row_bytes);
        return AIC_OK;
    }
    default: return fail(AIC_ERROR_INVALID_ARGUMENT, "aic: bad plan argument kind %d", a->kind);
    }
}

static int setup(aic_model *m, int device_id) {
    const aic_cuda_plan *p = &aic_cuda_plan_data;
    int status = load_driver(m);
    if (status != AIC_OK) return status;
    CHECK(m, m->drv.cuInit(0), "cuInit");
    int count = 0;
    CHECK(m, m->drv.cuDeviceGetCount(&count), "cuDeviceGetCount");
    if (count == 0) return fail(AIC_ERROR_UNSUPPORTED_CPU, "no CUDA device on this machine");
    if (device_id < 0 || device_id >= count)
        return fail(AIC_ERROR_INVALID_ARGUMENT, "aic: CUDA device %d does not exist (%d devices)", device_id, count);
    CHECK(m, m->drv.cuDeviceGet(&m->device, device_id), "cuDeviceGet");
    int major = 0, minor = 0;
    CHECK(m, m->drv.cuDeviceGetAttribute(&major, AIC_CU_ATTR_CC_MAJOR, m->device), "cuDeviceGetAttribute");
    CHECK(m, m->drv.cuDeviceGetAttribute(&minor, AIC_CU_ATTR_CC_MINOR, m->device), "cuDeviceGetAttribute");
    snprintf(m->arch, sizeof m->arch, "sm_%d%d", major, minor);
    const aic_cuda_image *image = pick_image(major, minor);
    if (image == NULL) {
        char list[256];
        image_list(list, sizeof list);
        return fail(AIC_ERROR_UNSUPPORTED_CPU,
                    "aic: this model was compiled for %s; CUDA device %d is %s: recompile with --target \"cuda -arch=%s\"",
                    list, device_id, m->arch, m->arch);
    }
    CHECK(m, m->drv.cuDevicePrimaryCtxRetain(&m->context, m->device), "cuDevicePrimaryCtxRetain");
    CHECK(m, m->drv.cuCtxSetCurrent(m->context), "cuCtxSetCurrent");
    CHECK(m, m->drv.cuModuleLoadData(&m->module, image->data), image->is_ptx ? "loading the PTX" : "loading the cubin");
    m->functions = calloc((size_t)p->num_kernels + 1, sizeof *m->functions);
    if (m->functions == NULL) return fail(AIC_ERROR_OUT_OF_MEMORY, "aic: out of memory");
    for (int k = 0; k < p->num_kernels; k++) {
        CHECK(m, m->drv.cuModuleGetFunction(&m->functions[k], m->module, p->kernels[k].name), p->kernels[k].name);
        if (p->kernels[k].smem_bytes > 48 * 1024)
            CHECK(m, m->drv.cuFuncSetAttribute(m->functions[k], AIC_CU_FUNC_MAX_DYNAMIC_SMEM, (int)p->kernels[k].smem_bytes),
                  "cuFuncSetAttribute");
    }
    CHECK(m, m->drv.cuStreamCreate(&m->stream, AIC_CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    size_t arena = aic_model_data.arena_bytes;
    CHECK(m, m->drv.cuMemAlloc(&m->arena, arena ? arena : 1), "allocating the device arena");
    CHECK(m, m->drv.cuMemAlloc(&m->weights, p->weight_bytes ? p->weight_bytes : 1), "allocating the weights");
    if (p->weight_bytes)
        CHECK(m, m->drv.cuMemcpyHtoDAsync(m->weights, aic_weights, p->weight_bytes, m->stream), "uploading the weights");
    int ni = aic_model_data.num_inputs, no = aic_model_data.num_outputs, na = p->num_args;
    m->inputs = calloc((size_t)ni + 1, sizeof(CUdeviceptr));
    m->outputs = calloc((size_t)no + 1, sizeof(CUdeviceptr));
    m->argvals = calloc((size_t)na + 1, sizeof(CUdeviceptr));
    m->argptrs = calloc((size_t)na + 1, sizeof(void *));
    if (!m->inputs || !m->outputs || !m->argvals || !m->argptrs) return fail(AIC_ERROR_OUT_OF_MEMORY, "aic: out of memory");
    for (int i = 0; i < ni; i++) {
        size_t n = aic_model_data.inputs[i].nbytes;
        CHECK(m, m->drv.cuMemAlloc(&m->inputs[i], n ? n : 1), "allocating an input buffer");
    }
    for (int i = 0; i < no; i++) {
        size_t n = aic_model_data.outputs[i].nbytes;
        CHECK(m, m->drv.cuMemAlloc(&m->outputs[i], n ? n : 1), "allocating an output buffer");
    }
    for (int a = 0; a < na; a++) m->argptrs[a] = &m->argvals[a];
    int ns = aic_model_data.num_symbols;
    m->dims = calloc((size_t)ns + 1, sizeof(int64_t));
    m->prev_dims = calloc((size_t)ns + 1, sizeof(int64_t));
    if (!m->dims || !m->prev_dims) return fail(AIC_ERROR_OUT_OF_MEMORY, "aic: out of memory");
    for (int k = 0; k < ns; k++) m->dims[k] = aic_model_data.symbols[k].max;
    CHECK(m, m->drv.cuStreamSynchronize(m->stream), "uploading the weights");
    const char *env = getenv("AIC_CUDA_GRAPHS");
    m->graphs = !(env && strcmp(env, "0") == 0);
    return AIC_OK;
}

static void teardown(aic_model *m) {
    if (m->drv.cuMemFree != NULL) {
        if (m->graph_exec) m->drv.cuGraphExecDestroy(m->graph_exec);
        if (m->graph) m->drv.cuGraphDestroy(m->graph);
        for (int i = 0; m->inputs && i < aic_model_data.num_inputs; i++)
            if (m->inputs[i]) m->drv.cuMemFree(m->inputs[i]);
        for (int i = 0; m->outputs && i < aic_model_data.num_outputs; i++)
            if (m->outputs[i]) m->drv.cuMemFree(m->outputs[i]);
        if (m->arena) m->drv.cuMemFree(m->arena);
        if (m->weights) m->drv.cuMemFree(m->weights);
        if (m->stream) m->drv.cuStreamDestroy(m->stream);
        if (m->module) m->drv.cuModuleUnload(m->module);
        if (m->context) m->drv.cuDevicePrimaryCtxRelease(m->device);
    }
    free(m->inputs);
    free(m->outputs);
    free(m->dims);
    free(m->prev_dims);
    free(m->argvals);
    free(m->argptrs);
    free(m->functions);
    if (m->libcuda) dlclose(m->libcuda);
}

#include "aic_kernel_error.h"

AIC_API int aic_num_threads(const aic_model *model) { return model ? 1 : 0; }
/* The source the kernels were compiled from, and the device architecture in use. */
AIC_API const char *aic_cuda_source(void) { return aic_cuda_plan_data.source; }
AIC_API const char *aic_cuda_arch(const aic_model *model) { return model ? model->arch : ""; }

/* Create an instance on CUDA device `device_id` (< 0: AIC_CUDA_DEVICE, else 0). */
AIC_API aic_model *aic_cuda_create(int device_id) {
    if (device_id < 0) {
        const char *env = getenv("AIC_CUDA_DEVICE");
        device_id = env && *env ? atoi(env) : 0;
    }
    aic_model *m = calloc(1, sizeof *m);
    if (m == NULL) {
        fail(AIC_ERROR_OUT_OF_MEMORY, "aic: out of memory creating a model");
        return NULL;
    }
    if (setup(m, device_id) != AIC_OK) {
        char saved[sizeof last_error];
        memcpy(saved, last_error, sizeof saved);
        teardown(m);
        free(m);
        memcpy(last_error, saved, sizeof saved);
        return NULL;
    }
    pthread_mutex_init(&m->run_lock, NULL);
    return m;
}

/* num_threads is a CPU notion: ignored. The device is AIC_CUDA_DEVICE, else 0. */
AIC_API aic_model *aic_create(int num_threads) {
    (void)num_threads;
    return aic_cuda_create(-1);
}

static int launch(run_ctx *c, int index) {
    aic_model *m = c->m;
    const aic_cuda_plan *p = &aic_cuda_plan_data;
    const aic_cuda_launch *L = &p->launches[index];
    const aic_cuda_kernel *k = &p->kernels[L->kernel];
    for (int a = 0; a < L->num_args; a++) {
        int status = arg_pointer(c, &p->args[L->first_arg + a], &m->argvals[L->first_arg + a]);
        if (status != AIC_OK) return status;
        if (a < 64 && (k->aligned16 >> a & 1) && (m->argvals[L->first_arg + a] & 15))
            return fail(AIC_ERROR_INVALID_ARGUMENT,
                        "aic: kernel %s reads argument %d as 16-byte vectors, but its address 0x%llx is not 16-byte "
                        "aligned (pass device buffers that start at a multiple of 16 bytes)",
                        k->name, a, (unsigned long long)m->argvals[L->first_arg + a]);
    }
    int64_t grid[3] = {k->grid[0], k->grid[1], k->grid[2]};
    if (k->grid_of != NULL) {
        k->grid_of(c->dims, grid);
        if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0) return AIC_OK; /* nothing to do at these sizes */
        if (grid[0] < 0 || grid[0] > 2147483647LL || grid[1] < 0 || grid[1] > 65535 || grid[2] < 0 || grid[2] > 65535)
            return fail(AIC_ERROR_INVALID_ARGUMENT, "aic: kernel %s needs a grid of %lld x %lld x %lld blocks at these "
                        "sizes, beyond the CUDA limits", k->name, (long long)grid[0], (long long)grid[1],
                        (long long)grid[2]);
    }
    CHECK(m, m->drv.cuLaunchKernel(m->functions[L->kernel], (unsigned)grid[0], (unsigned)grid[1], (unsigned)grid[2],
                                   k->block[0], k->block[1], k->block[2], k->smem_bytes, c->stream,
                                   m->argptrs + L->first_arg, NULL),
          k->name);
    return AIC_OK;
}

/* Run plan entries first .. first + count - 1 (whole subtrees). */
static int run_steps(run_ctx *c, int first, int count) {
    const aic_cuda_step *steps = aic_cuda_plan_data.steps;
    for (int s = first; s < first + count; s += 1 + (steps[s].kind == AIC_STEP_LAUNCH ? 0 : steps[s].size)) {
        const aic_cuda_step *st = &steps[s];
        int status = AIC_OK;
        if (st->kind == AIC_STEP_LAUNCH) {
            status = launch(c, st->launch);
        } else if (st->kind == AIC_STEP_IF) {
            CUdeviceptr p;
            unsigned char flag = 0;
            status = arg_pointer(c, &st->cond, &p);
            if (status == AIC_OK) status = read_device(c, p, &flag, 1);
            if (status == AIC_OK)
                status = flag ? run_steps(c, s + 1, st->then_size)
                              : run_steps(c, s + 1 + st->then_size, st->size - st->then_size);
        } else {
            if (c->depth == 16) return fail(AIC_ERROR_INVALID_ARGUMENT, "aic: loops nested more than 16 deep");
            int64_t trips = INT64_MAX;
            CUdeviceptr counter;
            status = arg_pointer(c, &st->counter, &counter);
            if (status == AIC_OK && st->trips.kind == AIC_ARG_CONST) trips = st->trips.value;
            else if (status == AIC_OK && st->trips.kind != AIC_ARG_NONE) {
                CUdeviceptr p;
                status = arg_pointer(c, &st->trips, &p);
                if (status == AIC_OK) status = read_device(c, p, &trips, sizeof trips);
            }
            int d = c->depth++;
            c->counters[d] = &st->counter;
            int64_t i = 0;
            for (; status == AIC_OK && i < trips; i++) {
                if (st->cond.kind != AIC_ARG_NONE) {
                    CUdeviceptr p;
                    unsigned char flag = 0;
                    status = arg_pointer(c, &st->cond, &p);
                    if (status == AIC_OK) status = read_device(c, p, &flag, 1);
                    if (status != AIC_OK || !flag) break;
                }
                c->iteration[d] = i;
                CUresult r = c->m->drv.cuMemcpyHtoDAsync(counter, &c->iteration[d], sizeof(int64_t), c->stream);
                if (r == 0) r = c->m->drv.cuStreamSynchronize(c->stream); /* the host value must outlive the copy */
                if (r != 0) status = cuda_error(c->m, r, "setting a loop counter");
                if (status == AIC_OK) status = run_steps(c, s + 1, st->size);
            }
            c->iteration[d] = i; /* as on the CPU: the counter ends at the number of iterations run */
            if (status == AIC_OK) {
                CUresult r = c->m->drv.cuMemcpyHtoDAsync(counter, &c->iteration[d], sizeof(int64_t), c->stream);
                if (r == 0) r = c->m->drv.cuStreamSynchronize(c->stream);
                if (r != 0) status = cuda_error(c->m, r, "setting a loop counter");
            }
            c->depth--;
        }
        if (status != AIC_OK) return status;
    }
    return AIC_OK;
}

static int launch_all(aic_model *m, CUstream stream, const CUdeviceptr *ins, const CUdeviceptr *outs) {
    run_ctx c = {m, stream, ins, outs, m->dims, 0, {0}, {0}};
    return run_steps(&c, 0, aic_cuda_plan_data.num_steps);
}

/* Launch the plan over the model's own input/output buffers, through a graph captured at the second run.
 * A model compiled for ranges of sizes: the grids are part of the graph, so a graph serves only the sizes
 * it was captured at; a run at other sizes drops it and launches directly, and a graph is captured again
 * at the second consecutive run at the same sizes. */
static int launch_graph(aic_model *m) {
    size_t dims_bytes = (size_t)aic_model_data.num_symbols * sizeof(int64_t);
    int same = dims_bytes == 0 || memcmp(m->dims, m->prev_dims, dims_bytes) == 0;
    memcpy(m->prev_dims, m->dims, dims_bytes);
    if (m->graph_exec != NULL && !same) {
        m->drv.cuGraphExecDestroy(m->graph_exec);
        m->drv.cuGraphDestroy(m->graph);
        m->graph_exec = NULL;
        m->graph = NULL;
    }
    if (m->graph_exec == NULL && m->graphs && !aic_cuda_plan_data.has_control && m->runs >= 1 && same) {
        CHECK(m, m->drv.cuStreamBeginCapture(m->stream, AIC_CU_CAPTURE_THREAD_LOCAL), "cuStreamBeginCapture");
        int status = launch_all(m, m->stream, m->inputs, m->outputs);
        CUgraph graph = NULL;
        CUresult r = m->drv.cuStreamEndCapture(m->stream, &graph);
        if (status != AIC_OK) return status;
        if (r != 0) return cuda_error(m, r, "cuStreamEndCapture");
        m->graph = graph;
        CHECK(m, m->drv.cuGraphInstantiateWithFlags(&m->graph_exec, graph, 0), "cuGraphInstantiateWithFlags");
    }
    if (m->graph_exec != NULL) {
        CHECK(m, m->drv.cuGraphLaunch(m->graph_exec, m->stream), "cuGraphLaunch");
        return AIC_OK;
    }
    return launch_all(m, m->stream, m->inputs, m->outputs);
}

#include "cuda_sizes.h"

AIC_API int aic_run_shaped(aic_model *m, const void *const *inputs, void *const *outputs, int64_t *dims) {
    return aic_run_dims(m, NULL, inputs, outputs, dims);
}

AIC_API int aic_run(aic_model *m, const void *const *inputs, void *const *outputs) {
    return aic_run_shaped(m, inputs, outputs, NULL);
}

/* Input dims checked as on the CPU (symbol_values, aic_tables.h); NULL: a ranged model at its largest sizes. */
AIC_API int aic_run_dims(aic_model *m, const int64_t *input_dims, const void *const *inputs, void *const *outputs,
                         int64_t *dims) {
    if (m == NULL) return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_run: the model is NULL");
    int ns = aic_model_data.num_symbols, ranged = ns > 0;
    int64_t values[ns > 0 ? ns : 1];
    int status = symbol_values(input_dims, values);
    if (status != AIC_OK) return status;
    if (ranged && aic_cuda_plan_data.output_dims == NULL)
        return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_run: the model has run-time sizes but no output dims (damaged)");
    for (int i = 0; i < aic_model_data.num_inputs; i++)
        if (aic_model_data.inputs[i].nbytes && (inputs == NULL || inputs[i] == NULL))
            return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_run: input %d ('%s') is NULL", i, aic_model_data.inputs[i].name);
    for (int i = 0; i < aic_model_data.num_outputs; i++)
        if (aic_model_data.outputs[i].nbytes && (outputs == NULL || outputs[i] == NULL))
            return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_run: output %d ('%s') is NULL", i, aic_model_data.outputs[i].name);
    pthread_mutex_lock(&m->run_lock);
    if (m->drv.cuCtxSetCurrent(m->context) != 0) status = fail(AIC_ERROR_INVALID_ARGUMENT, "aic: cuCtxSetCurrent failed");
    if (status == AIC_OK) status = set_dims(m, values, m->stream);
    for (int i = 0; status == AIC_OK && i < aic_model_data.num_inputs; i++) {
        const aic_tensor_info *info = &aic_model_data.inputs[i];
        int64_t shape[info->rank > 0 ? info->rank : 1];
        input_dims_at(i, m->dims, shape);
        size_t n = ranged ? tensor_bytes(info, shape) : info->nbytes;
        CUresult r = m->drv.cuMemcpyHtoDAsync(m->inputs[i], inputs[i], n, m->stream);
        if (r != 0) status = cuda_error(m, r, "copying an input to the device");
    }
    static const int64_t clear[4];
    int64_t slot[4] = {0};
    CUdeviceptr error_slot = m->arena + (CUdeviceptr)aic_model_data.error_offset;
    int checked = aic_model_data.error_offset >= 0;
    if (status == AIC_OK && checked) {
        CUresult r = m->drv.cuMemcpyHtoDAsync(error_slot, clear, sizeof clear, m->stream);
        if (r != 0) status = cuda_error(m, r, "clearing the error slot");
    }
    if (status == AIC_OK) status = launch_graph(m);
    if (status == AIC_OK && ranged) status = copy_outputs_at_shapes(m, outputs, dims);
    for (int i = 0; status == AIC_OK && !ranged && i < aic_model_data.num_outputs; i++) {
        CUresult r = m->drv.cuMemcpyDtoHAsync(outputs[i], m->outputs[i], aic_model_data.outputs[i].nbytes, m->stream);
        if (r != 0) status = cuda_error(m, r, "copying an output to the host");
    }
    if (status == AIC_OK && checked) {
        CUresult r = m->drv.cuMemcpyDtoHAsync(slot, error_slot, sizeof slot, m->stream);
        if (r != 0) status = cuda_error(m, r, "reading the error slot");
    }
    if (status == AIC_OK && !ranged && dims != NULL) status = copy_output_dims(m, dims);
    if (status == AIC_OK) {
        CUresult r = m->drv.cuStreamSynchronize(m->stream);
        if (r != 0) status = cuda_error(m, r, "running the model");
    }
    if (status == AIC_OK) m->runs++;
    if (status == AIC_OK) status = kernel_error_status(slot);
    pthread_mutex_unlock(&m->run_lock);
    return status;
}

/* Run on device buffers (CUdeviceptr values, C-contiguous at the actual shapes) on `stream` (NULL: the
 * model's stream), the input dims checked as by aic_run_dims (NULL: a ranged model at its largest sizes).
 * No graph. A model with run-time checks (an index out of range) has an error slot: it is cleared before
 * the launches and read after them, as aic_run does, which synchronises the stream; without checks the
 * call is asynchronous (the caller synchronises). */
AIC_API int aic_run_device_dims(aic_model *m, const int64_t *input_dims, const uint64_t *inputs,
                                const uint64_t *outputs, void *stream) {
    if (m == NULL || (aic_model_data.num_inputs && inputs == NULL) || (aic_model_data.num_outputs && outputs == NULL))
        return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_run_device: NULL model, inputs or outputs");
    int64_t values[aic_model_data.num_symbols > 0 ? aic_model_data.num_symbols : 1];
    int status = symbol_values(input_dims, values);
    if (status != AIC_OK) return status;
    pthread_mutex_lock(&m->run_lock);
    CUstream s = stream ? (CUstream)stream : m->stream;
    static const int64_t clear[4];
    int64_t slot[4] = {0};
    CUdeviceptr error_slot = m->arena + (CUdeviceptr)aic_model_data.error_offset;
    int checked = aic_model_data.error_offset >= 0;
    if (m->drv.cuCtxSetCurrent(m->context) != 0) status = fail(AIC_ERROR_INVALID_ARGUMENT, "aic: cuCtxSetCurrent failed");
    if (status == AIC_OK) status = set_dims(m, values, s);
    if (status == AIC_OK && checked) {
        CUresult r = m->drv.cuMemcpyHtoDAsync(error_slot, clear, sizeof clear, s);
        if (r != 0) status = cuda_error(m, r, "clearing the error slot");
    }
    if (status == AIC_OK) status = launch_all(m, s, (const CUdeviceptr *)inputs, (const CUdeviceptr *)outputs);
    if (status == AIC_OK && checked) {
        CUresult r = m->drv.cuMemcpyDtoHAsync(slot, error_slot, sizeof slot, s);
        if (r == 0) r = m->drv.cuStreamSynchronize(s);
        if (r != 0) status = cuda_error(m, r, "reading the error slot");
    }
    if (status == AIC_OK) m->runs++;
    if (status == AIC_OK && checked) status = kernel_error_status(slot);
    pthread_mutex_unlock(&m->run_lock);
    return status;
}

AIC_API int aic_run_device(aic_model *m, const uint64_t *inputs, const uint64_t *outputs, void *stream) {
    return aic_run_device_dims(m, NULL, inputs, outputs, stream);
}

AIC_API int aic_output_shape(aic_model *m, int i, int64_t *dims) {
    const aic_tensor_info *info = aic_output_info(i);
    if (m == NULL || dims == NULL) return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_output_shape: the model or dims is NULL");
    if (info == NULL)
        return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_output_shape: no output %d (the model has %d)", i,
                    aic_model_data.num_outputs);
    const int64_t *sizes = aic_model_data.output_sizes ? aic_model_data.output_sizes[i] : NULL;
    if (sizes != NULL && m->runs == 0)
        return fail(AIC_ERROR_INVALID_ARGUMENT,
                    "aic_output_shape: output %d ('%s') has a data-dependent shape, known only after aic_run", i, info->name);
    pthread_mutex_lock(&m->run_lock);
    int status = AIC_OK;
    for (int d = 0; d < info->rank; d++) {
        dims[d] = info->shape[d];
        if (sizes != NULL && sizes[d] >= 0) {
            CUresult r = m->drv.cuMemcpyDtoHAsync(&dims[d], m->arena + (CUdeviceptr)sizes[d], sizeof(int64_t), m->stream);
            if (r == 0) r = m->drv.cuStreamSynchronize(m->stream);
            if (r != 0) {
                status = cuda_error(m, r, "reading an output size");
                break;
            }
        }
    }
    pthread_mutex_unlock(&m->run_lock);
    return status;
}

AIC_API void aic_destroy(aic_model *m) {
    if (m == NULL) return;
    if (m->drv.cuCtxSetCurrent) m->drv.cuCtxSetCurrent(m->context);
    teardown(m);
    pthread_mutex_destroy(&m->run_lock);
    free(m);
}
