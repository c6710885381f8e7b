/* aic_cuda_emu.h: run the CUDA C that aic generates on a CPU, for testing without a GPU.
 *
 *     g++ -std=c++17 -O1 -fPIC -shared -include aic_cuda_emu.h -x c++ kernels.cu -o emu.so
 *
 * The generated kernel text is compiled unchanged. Blocks run one at a time on the
 * calling thread. A kernel that synchronises (`__syncthreads`, warp shuffles; the code
 * generator flags it) runs its block's threads as fibers (ucontext): each runs until it
 * reaches a barrier, and a barrier releases when every live thread of the block waits at
 * it; a warp shuffle is a barrier of the 32 lanes of a warp around an exchange. Threads
 * that wait at different barriers, or at a barrier while others of their warp shuffle,
 * abort with a message (a hang or garbage on a GPU). Other kernels run thread after thread.
 * Shared memory is one buffer per launch, filled with 0xFF (NaN) before every block, so a
 * read before a write shows. AIC_EMU_ORDER=reverse runs threads in reverse order (races
 * that forward order hides show up as differences).
 *
 * aic_emu_driver() returns a driver-function table (runtime/cuda_driver.h) that
 * runtime/cuda_runtime.c uses instead of libcuda: device memory is host memory, streams
 * run synchronously, a captured graph records launches and replays them.
 */
#ifndef AIC_CUDA_EMU_H
#define AIC_CUDA_EMU_H

#define AIC_EMULATE 1
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define AIC_DEVICE static inline

struct aic_emu_dim3 {
    unsigned x, y, z;
};

struct aic_emu_kernel {
    const char *name;
    void (*fn)(void **params);
    int syncs; /* uses barriers or warp operations: needs fibers */
    int num_params;
};

namespace aic_emu {

enum State { READY, AT_BARRIER, AT_WARP, DONE };

struct Thread {
    ucontext_t ctx;
    aic_emu_dim3 idx;
    int linear;
    State state;
    char *stack;
    void *site; /* the __syncthreads it waits at */
};

struct Launch {
    aic_emu_dim3 grid, block, block_idx;
    unsigned char *smem;
    Thread *threads;
    int count;
    void (*fn)(void **);
    void **params;
};

inline Launch *launch;
inline Thread *cur;
inline ucontext_t scheduler;
inline Thread plain_thread; /* the current thread of a kernel run without fibers */
inline uint64_t exchange[1024];
inline int fibers;

[[noreturn]] inline void die(const char *what) {
    fprintf(stderr, "aic CUDA emulator: %s (block %u,%u,%u thread %u,%u,%u)\n", what, launch->block_idx.x,
            launch->block_idx.y, launch->block_idx.z, cur->idx.x, cur->idx.y, cur->idx.z);
    abort();
}

inline void wait(State s) {
    if (!fibers) die("a barrier in a kernel compiled without synchronisation");
    cur->state = s;
    swapcontext(&cur->ctx, &scheduler);
}

inline void entry() {
    launch->fn(launch->params);
    cur->state = DONE;
}

inline const char *order() {
    const char *env = getenv("AIC_EMU_ORDER");
    return env ? env : "forward";
}

inline void run_block_fibers() {
    Launch *L = launch;
    const size_t stack_bytes = 256 * 1024;
    for (int t = 0; t < L->count; t++) {
        Thread *th = &L->threads[t];
        th->state = READY;
        getcontext(&th->ctx);
        th->ctx.uc_stack.ss_sp = th->stack;
        th->ctx.uc_stack.ss_size = stack_bytes;
        th->ctx.uc_link = &scheduler;
        makecontext(&th->ctx, (void (*)())entry, 0);
    }
    int reverse = strcmp(order(), "reverse") == 0;
    for (;;) {
        int live = 0, at_barrier = 0;
        for (int i = 0; i < L->count; i++) {
            Thread *th = &L->threads[reverse ? L->count - 1 - i : i];
            if (th->state == READY) {
                cur = th;
                swapcontext(&scheduler, &th->ctx);
            }
        }
        for (int t = 0; t < L->count; t++) {
            live += L->threads[t].state != DONE;
            at_barrier += L->threads[t].state == AT_BARRIER;
        }
        if (live == 0) return;
        int released = 0;
        for (int w = 0; w * 32 < L->count; w++) { /* a warp whose lanes all wait at a warp operation */
            int lanes = std::min(32, L->count - w * 32), waiting = 0;
            for (int l = 0; l < lanes; l++) waiting += L->threads[w * 32 + l].state == AT_WARP;
            if (waiting == lanes) {
                for (int l = 0; l < lanes; l++) L->threads[w * 32 + l].state = READY;
                released = 1;
            }
        }
        if (released) continue;
        if (at_barrier == live) {
            void *site = nullptr;
            for (int t = 0; t < L->count; t++) {
                Thread *th = &L->threads[t];
                if (th->state != AT_BARRIER) continue;
                if (site != nullptr && th->site != site) {
                    cur = th;
                    die("threads of one block wait at different __syncthreads (divergent barrier)");
                }
                site = th->site;
            }
            for (int t = 0; t < L->count; t++)
                if (L->threads[t].state == AT_BARRIER) L->threads[t].state = READY;
            continue;
        }
        for (int t = 0; t < L->count; t++)
            if (L->threads[t].state != DONE) cur = &L->threads[t];
        die("deadlock: threads wait at different barriers or warp operations (divergent __syncthreads/shuffle)");
    }
}

inline void run(void (*fn)(void **), int syncs, aic_emu_dim3 grid, aic_emu_dim3 block, unsigned smem_bytes,
                void **params) {
    Launch L{grid, block, {0, 0, 0}, nullptr, nullptr, 0, fn, params};
    L.count = (int)(block.x * block.y * block.z);
    if (L.count > 1024) {
        fprintf(stderr, "aic CUDA emulator: %d threads per block (at most 1024)\n", L.count);
        abort();
    }
    L.smem = (unsigned char *)malloc(smem_bytes ? smem_bytes : 1);
    L.threads = (Thread *)calloc((size_t)L.count, sizeof(Thread));
    fibers = syncs;
    if (syncs)
        for (int t = 0; t < L.count; t++)
            L.threads[t].stack = (char *)mmap(nullptr, 256 * 1024, PROT_READ | PROT_WRITE,
                                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    for (int t = 0; t < L.count; t++) {
        Thread *th = &L.threads[t];
        th->linear = t;
        th->idx = {(unsigned)(t % block.x), (unsigned)(t / block.x % block.y), (unsigned)(t / (block.x * block.y))};
    }
    launch = &L;
    int reverse = strcmp(order(), "reverse") == 0;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                L.block_idx = {x, y, z};
                memset(L.smem, 0xFF, smem_bytes);
                if (syncs) {
                    run_block_fibers();
                    continue;
                }
                for (int i = 0; i < L.count; i++) {
                    cur = &L.threads[reverse ? L.count - 1 - i : i];
                    fn(params);
                }
            }
    if (syncs)
        for (int t = 0; t < L.count; t++) munmap(L.threads[t].stack, 256 * 1024);
    free(L.threads);
    free(L.smem);
    launch = nullptr;
}

template <class T> inline T shuffle(T v, int src_lane) {
    static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
    int lane = cur->linear & 31, base = cur->linear & ~31;
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof(T));
    exchange[cur->linear] = bits;
    wait(AT_WARP);
    int lanes = std::min(32, launch->count - base);
    bits = exchange[base + ((src_lane % lanes) + lanes) % lanes];
    wait(AT_WARP); /* nobody overwrites the slots before every lane has read */
    (void)lane;
    T out;
    memcpy(&out, &bits, sizeof(T));
    return out;
}

} // namespace aic_emu

#define threadIdx (aic_emu::cur->idx)
#define blockIdx (aic_emu::launch->block_idx)
#define blockDim (aic_emu::launch->block)
#define gridDim (aic_emu::launch->grid)
#define AIC_SMEM_DECL(name) unsigned char *const name = aic_emu::launch->smem

/* Not inlined: its return address names the barrier, and all threads must meet at the same one. */
__attribute__((noinline)) inline void __syncthreads() {
    aic_emu::cur->site = __builtin_return_address(0);
    aic_emu::wait(aic_emu::AT_BARRIER);
}
/* CUDA's 16-byte vector types; a vector access must be 16-byte aligned, as on a GPU. */
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) int4 {
    int x, y, z, w;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline void aic_emu_check_aligned16(const void *p) {
    if ((uintptr_t)p & 15) aic_emu::die("a 16-byte vector access at an address that is not 16-byte aligned");
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    if (mask != 0xffffffffu) aic_emu::die("__syncwarp with a partial mask");
    aic_emu::wait(aic_emu::AT_WARP);
}
template <class T> inline T __shfl_sync(unsigned mask, T v, int lane, int width = 32) {
    if (mask != 0xffffffffu || width != 32) aic_emu::die("a shuffle with a partial mask or width");
    return aic_emu::shuffle(v, lane);
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int offset, int width = 32) {
    if (mask != 0xffffffffu || width != 32) aic_emu::die("a shuffle with a partial mask or width");
    return aic_emu::shuffle(v, (aic_emu::cur->linear & 31) ^ offset);
}
template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    if (mask != 0xffffffffu || width != 32) aic_emu::die("a shuffle with a partial mask or width");
    int lane = aic_emu::cur->linear & 31;
    T other = aic_emu::shuffle(v, lane + (int)delta < 32 ? lane + (int)delta : lane);
    return other;
}

/* Tensor cores: TF32 rounding (cvt.rna: nearest, ties away) and mma.sync.m16n8k8.row.col with the PTX
 * fragment layouts: a0 (g, t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4); b0 (t, g), b1 (t + 4, g);
 * c/d e: (g + 8 * (e / 2), 2 * t + e % 2), where g = lane / 4 and t = lane % 4. */
inline uint32_t aic_tf32(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    return u;
}
namespace aic_emu {
inline uint32_t mma_a[1024][4], mma_b[1024][2];
inline float tf32_value(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
} // namespace aic_emu
namespace aic_emu {
/* One warp-wide mma.sync with float32 C/D: the 32 lanes exchange their A and B fragment registers, then each
 * lane computes its four D elements (row g or g + 8, columns 2t and 2t + 1) over K, in k order.
 * `product(a, b, row, col, k)` is A[row, k] * B[k, col] read from the warp's registers (a: the warp's
 * first lane's A registers, lane (row & 7) * 4 + ..., likewise b). */
template <int K, class Product>
inline void mma_warp(float d[4], const uint32_t a[4], const uint32_t b[2], Product product) {
    const int me = cur->linear, base = me & ~31, lane = me & 31, g = lane >> 2, t = lane & 3;
    if (launch->count - base < 32) die("mma.sync in a partial warp");
    memcpy(mma_a[me], a, sizeof mma_a[me]);
    memcpy(mma_b[me], b, sizeof mma_b[me]);
    wait(AT_WARP);
    float out[4];
    for (int e = 0; e < 4; e++) {
        int row = g + 8 * (e >> 1), col = 2 * t + (e & 1);
        float sum = d[e];
        for (int k = 0; k < K; k++) sum += product(mma_a + base, mma_b + base, row, col, k);
        out[e] = sum;
    }
    wait(AT_WARP); /* every lane has read the fragments */
    memcpy(d, out, sizeof out);
}
} // namespace aic_emu
inline void aic_mma_m16n8k8_tf32(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    using namespace aic_emu;
    mma_warp<8>(d, a, b, [](const uint32_t (*ra)[4], const uint32_t (*rb)[2], int row, int col, int k) {
        return tf32_value(ra[(row & 7) * 4 + (k & 3)][(row >= 8) + 2 * (k >= 4)]) *
               tf32_value(rb[col * 4 + (k & 3)][k >= 4]);
    });
}

/* mma.sync.m16n8k16.row.col with 16-bit A and B (float16 or bfloat16, decoded by `decode`) and float32
 * C/D. Each register holds two values, the lower index in the low half: a0 (g, 2t..2t+1), a1 (g + 8, 2t..),
 * a2 (g, 2t + 8..), a3 (g + 8, 2t + 8..); b0 (2t..2t+1, g), b1 (2t + 8.., g); c/d as m16n8k8. Products of
 * two 16-bit values are exact in float32; the sums are float32, in k order. */
namespace aic_emu {
inline uint16_t half_of(const uint32_t *regs, int reg, int k) { return (uint16_t)(regs[reg] >> (16 * (k & 1))); }
} // namespace aic_emu
inline void aic_emu_mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], float (*decode)(uint16_t)) {
    using namespace aic_emu;
    mma_warp<16>(d, a, b, [decode](const uint32_t (*ra)[4], const uint32_t (*rb)[2], int row, int col, int k) {
        int kk = k & 7; /* column within the 8-wide half: lane t holds 2t and 2t + 1 */
        return decode(half_of(ra[(row & 7) * 4 + (kk >> 1)], (row >= 8) + 2 * (k >= 8), k)) *
               decode(half_of(rb[col * 4 + (kk >> 1)], k >= 8, k));
    });
}

inline float __int_as_float(int x) {
    float f;
    memcpy(&f, &x, 4);
    return f;
}
inline int __float_as_int(float f) {
    int x;
    memcpy(&x, &f, 4);
    return x;
}
inline double __longlong_as_double(long long x) {
    double d;
    memcpy(&d, &x, 8);
    return d;
}
inline long long __double_as_longlong(double d) {
    long long x;
    memcpy(&x, &d, 8);
    return x;
}

#endif /* AIC_CUDA_EMU_H */

/* ---- the emulated driver: compiled after the generated kernels (they define aic_emu_kernels) */
#ifdef AIC_EMU_DRIVER
#include "cuda_driver.h"

extern "C" const aic_emu_kernel aic_emu_kernels[];

namespace aic_emu_driver {

struct Recorded {
    const aic_emu_kernel *kernel;
    aic_emu_dim3 grid, block;
    unsigned smem;
    int nparams;
    CUdeviceptr values[64];
};

struct Graph {
    Recorded *launches;
    int count, capacity;
};

inline Graph *capturing;
inline int device_context;

inline void run(const Recorded &r) {
    void *ptrs[64];
    for (int i = 0; i < r.nparams; i++) ptrs[i] = (void *)&r.values[i];
    aic_emu::run(r.kernel->fn, r.kernel->syncs, r.grid, r.block, r.smem, ptrs);
}

extern "C" {
static CUresult init(unsigned) { return 0; }
static CUresult version(int *v) { *v = 13000; return 0; }
static CUresult count(int *n) { *n = 1; return 0; }
static CUresult device_get(CUdevice *d, int i) { *d = i; return i == 0 ? 0 : 101; }
static CUresult attribute(int *v, int attr, CUdevice) {
    *v = attr == AIC_CU_ATTR_CC_MAJOR ? 12 : 0; /* newer than any image: the runtime picks the PTX, which is ignored */
    return 0;
}
static CUresult name(char *out, int len, CUdevice) { snprintf(out, (size_t)len, "aic CUDA emulator"); return 0; }
static CUresult error_string(CUresult, const char **text) { *text = "emulator error"; return 0; }
static CUresult ctx_retain(CUcontext *c, CUdevice) { *c = (CUcontext)&device_context; return 0; }
static CUresult ctx_release(CUdevice) { return 0; }
static CUresult ctx_set(CUcontext) { return 0; }
static CUresult module_load(CUmodule *m, const void *) { *m = (CUmodule)aic_emu_kernels; return 0; }
static CUresult module_function(CUfunction *f, CUmodule, const char *n) {
    for (const aic_emu_kernel *k = aic_emu_kernels; k->name; k++)
        if (strcmp(k->name, n) == 0) {
            *f = (CUfunction)k;
            return 0;
        }
    return 500; /* CUDA_ERROR_NOT_FOUND */
}
static CUresult module_unload(CUmodule) { return 0; }
static CUresult func_attribute(CUfunction, int, int) { return 0; }
static CUresult mem_alloc(CUdeviceptr *p, size_t n) {
    void *q = nullptr;
    if (posix_memalign(&q, 256, n ? n : 1) != 0) return 2; /* CUDA_ERROR_OUT_OF_MEMORY */
    memset(q, 0xFF, n); /* uninitialised device memory reads as NaN */
    *p = (CUdeviceptr)q;
    return 0;
}
static CUresult mem_free(CUdeviceptr p) { free((void *)p); return 0; }
static CUresult htod(CUdeviceptr d, const void *s, size_t n, CUstream) {
    if (capturing) return 900; /* CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED */
    memcpy((void *)d, s, n);
    return 0;
}
static CUresult dtoh(void *d, CUdeviceptr s, size_t n, CUstream) {
    if (capturing) return 900;
    memcpy(d, (const void *)s, n);
    return 0;
}
static CUresult dtod(CUdeviceptr d, CUdeviceptr s, size_t n, CUstream) {
    if (capturing) return 900;
    memmove((void *)d, (const void *)s, n);
    return 0;
}
static CUresult stream_create(CUstream *s, unsigned) { *s = (CUstream)&device_context; return 0; }
static CUresult stream_destroy(CUstream) { return 0; }
static CUresult stream_sync(CUstream) { return 0; }
static CUresult launch_kernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                              unsigned bz, unsigned smem, CUstream, void **params, void **) {
    const aic_emu_kernel *k = (const aic_emu_kernel *)f;
    Recorded r{k, {gx, gy, gz}, {bx, by, bz}, smem, k->num_params, {}};
    if (k->num_params > 64) return 1; /* CUDA_ERROR_INVALID_VALUE */
    /* aic kernels take only device pointers: copy the values, as the driver does at launch */
    int n = k->num_params;
    for (int i = 0; i < n; i++) r.values[i] = *(CUdeviceptr *)params[i];
    if (capturing) {
        Graph *g = capturing;
        if (g->count == g->capacity) {
            g->capacity = g->capacity ? 2 * g->capacity : 16;
            g->launches = (Recorded *)realloc(g->launches, (size_t)g->capacity * sizeof(Recorded));
        }
        g->launches[g->count++] = r;
        return 0;
    }
    run(r);
    return 0;
}
static CUresult begin_capture(CUstream, int) {
    capturing = (Graph *)calloc(1, sizeof(Graph));
    return 0;
}
static CUresult end_capture(CUstream, CUgraph *g) {
    *g = (CUgraph)capturing;
    capturing = nullptr;
    return 0;
}
static CUresult instantiate(CUgraphExec *e, CUgraph g, unsigned long long) { *e = (CUgraphExec)g; return 0; }
static CUresult graph_launch(CUgraphExec e, CUstream) {
    Graph *g = (Graph *)e;
    for (int i = 0; i < g->count; i++) run(g->launches[i]);
    return 0;
}
static CUresult exec_destroy(CUgraphExec) { return 0; }
static CUresult graph_destroy(CUgraph g) {
    free(((Graph *)g)->launches);
    free(g);
    return 0;
}

static const aic_cuda_driver table = {
    init, version, count, device_get, attribute, name, error_string, ctx_retain, ctx_release, ctx_set,
    module_load, module_function, module_unload, func_attribute, mem_alloc, mem_free, htod, dtoh, dtod,
    stream_create, stream_destroy, stream_sync, launch_kernel, begin_capture, end_capture, instantiate,
    graph_launch, exec_destroy, graph_destroy,
};

__attribute__((visibility("default"))) const aic_cuda_driver *aic_emu_driver(void) { return &table; }

/* Launch one kernel by name with `params` as cuLaunchKernel takes them (tests check kernels one
 * by one); -1 when the source has no such kernel. */
__attribute__((visibility("default"))) int aic_emu_launch(const char *kernel, const unsigned *grid,
                                                          const unsigned *block, unsigned smem_bytes, void **params) {
    for (const aic_emu_kernel *k = aic_emu_kernels; k->name; k++)
        if (strcmp(k->name, kernel) == 0) {
            aic_emu::run(k->fn, k->syncs, {grid[0], grid[1], grid[2]}, {block[0], block[1], block[2]}, smem_bytes,
                         params);
            return 0;
        }
    return -1;
}
}

} // namespace aic_emu_driver
#endif /* AIC_EMU_DRIVER */
