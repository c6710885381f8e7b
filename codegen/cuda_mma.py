"""Tensor-core matrix multiply-accumulate for the cuda target (TF32, float16 or bfloat16 in, float32 out).

`WarpMma` is a GPU-only loop-IR statement made by compiler/schedule_gpu_matmul.py: the
block's 8 warps multiply the shared-memory tiles `a` (BK x 64, k-major: a[k * 64 + i]) and
`b` (BK x 64: b[k * 64 + j]) into their accumulators with `mma.sync.m16n8k8` (TF32
operands rounded to nearest, ties away, as `cvt.rna.tf32.f32`). Warp w owns rows
16 * (w / 2) .. +16 and columns 32 * (w % 2) .. +32 of the 64 x 64 tile: four 16 x 8
mma tiles; lane l holds acc[4 * t + e] = D[16 * (w / 2) + l / 4 + 8 * (e / 2)]
[32 * (w % 2) + 8 * t + 2 * (l % 4) + e % 2] (the PTX fragment layout of the C matrix).

With 16-bit tiles (float16/bfloat16 bit patterns) `aic_mma_tile_16` uses `mma.sync.m16n8k16`
(f16 or bf16 operands, float32 accumulators; same C fragment). Each A/B fragment register packs two
consecutive k, so these tiles interleave pairs of k (`pair_slot`): element (k, i) at
(k / 2) * 128 + 2 * i + k % 2, and a register is one 32-bit shared load.

On a GPU `aic_mma_m16n8k8_tf32` and `aic_mma_m16n8k16_*` are one inline-PTX instruction each;
the emulator (runtime/aic_cuda_emu.h) implements them with a warp exchange and the same
fragment maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aic.ir.loop import INDEX, Barrier, Bin, Buffer, Cast, Const, Expr, For, Load, Seq, Stmt, Store, Var

MMA_PRELUDE = r"""
#ifndef AIC_EMULATE
AIC_DEVICE uint32_t aic_tf32(float x) {
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}
AIC_DEVICE void aic_mma_m16n8k8_tf32(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
AIC_DEVICE void aic_mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
AIC_DEVICE void aic_mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#else
inline void aic_mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    aic_emu_mma_m16n8k16(d, a, b, aic_h2f);
}
inline void aic_mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    aic_emu_mma_m16n8k16(d, a, b, aic_bf2f);
}
#endif
/* The 64 x 64 x BK tile product of the block's 8 warps (see codegen/cuda_mma.py). */
template <int BK> AIC_DEVICE void aic_mma_tile_tf32(float *acc, const float *a, const float *b) {
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int row = 16 * (warp >> 1), col = 32 * (warp & 1);
#pragma unroll
    for (int k = 0; k < BK; k += 8) {
        uint32_t fa[4];
        fa[0] = aic_tf32(a[(k + t) * 64 + row + g]);
        fa[1] = aic_tf32(a[(k + t) * 64 + row + g + 8]);
        fa[2] = aic_tf32(a[(k + t + 4) * 64 + row + g]);
        fa[3] = aic_tf32(a[(k + t + 4) * 64 + row + g + 8]);
#pragma unroll
        for (int n = 0; n < 4; ++n) {
            uint32_t fb[2];
            fb[0] = aic_tf32(b[(k + t) * 64 + col + 8 * n + g]);
            fb[1] = aic_tf32(b[(k + t + 4) * 64 + col + 8 * n + g]);
            aic_mma_m16n8k8_tf32(acc + 4 * n, fa, fb);
        }
    }
}
/* The same with 16-bit tiles (float16 or bfloat16 bit patterns) and m16n8k16. The tiles interleave
 * pairs of k: 32-bit word (k / 2) * 64 + i holds (k, i) in its low half and (k + 1, i) in its high half,
 * which is one fragment register (two consecutive k of a row of A or a column of B), one shared load. */
AIC_DEVICE uint32_t aic_ld_pair(const uint16_t *tile, int word) {
#ifdef AIC_EMULATE
    uint32_t v;
    memcpy(&v, tile + 2 * word, 4);
    return v;
#else
    return ((const uint32_t *)tile)[word];
#endif
}
template <int BK, bool BF16> AIC_DEVICE void aic_mma_tile_16(float *acc, const uint16_t *a, const uint16_t *b) {
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int row = 16 * (warp >> 1) + g, col = 32 * (warp & 1) + g;
#pragma unroll
    for (int k = 0; k < BK; k += 16) {
        const int w = (k / 2 + t) * 64;
        uint32_t fa[4];
        fa[0] = aic_ld_pair(a, w + row);
        fa[1] = aic_ld_pair(a, w + row + 8);
        fa[2] = aic_ld_pair(a, w + 4 * 64 + row);
        fa[3] = aic_ld_pair(a, w + 4 * 64 + row + 8);
#pragma unroll
        for (int n = 0; n < 4; ++n) {
            uint32_t fb[2];
            fb[0] = aic_ld_pair(b, w + col + 8 * n);
            fb[1] = aic_ld_pair(b, w + 4 * 64 + col + 8 * n);
            if (BF16) aic_mma_m16n8k16_bf16(acc + 4 * n, fa, fb);
            else aic_mma_m16n8k16_f16(acc + 4 * n, fa, fb);
        }
    }
}
"""

MMA_KINDS = {"float16": "f16", "bfloat16": "bf16"}  # 16-bit tile dtypes and their mma operand types


def pair_slot(k: Expr, i: Expr, width: int) -> Expr:
    """Where a 16-bit tile of `width` columns keeps element (k, i): k pairs interleaved."""
    two = Const(2, INDEX)
    pair = Bin("add", Bin("mul", Bin("div", k, two), Const(2 * width, INDEX)), Bin("mul", i, two))
    return Bin("add", pair, Bin("mod", k, two))


@dataclass(eq=False)
class WarpMma(Stmt):
    """acc += a x b over one shared-memory K step, on tensor cores: TF32 for float32 tiles,
    m16n8k16 for float16 or bfloat16 tiles."""

    acc: Buffer  # stack, 16 floats per thread
    a: Buffer  # shared, k-major 64-row tile
    b: Buffer  # shared, k-major 64-column tile
    k_step: int

    def footprint(self) -> Stmt:
        """Loop IR with the same memory accesses, for the verifier (ir/loop_verify.py): every
        element of both tiles read, each of the 16 accumulators updated; the barrier stands for
        `mma.sync`'s rule that every lane of the warp reaches it."""
        kk, x = Var("kk"), Var("x")
        at = Bin("add", Bin("mul", kk, Const(64, INDEX)), x)
        slot = Bin("div", x, Const(4, INDEX))
        a, b = (Cast(self.acc.dtype, Load(t, at)) for t in (self.a, self.b))
        update = Store(self.acc, slot, Bin("add", Load(self.acc, slot), Bin("mul", a, b)))
        return Seq([Barrier(), For(kk, Const(self.k_step, INDEX), For(x, Const(64, INDEX), update))])


def render_mma(writer: Any, s: Stmt, depth: int) -> bool:
    if not isinstance(s, WarpMma):
        return False
    writer.syncs = True
    n = writer.names
    kind = MMA_KINDS.get(s.a.dtype.name)
    tile = f"aic_mma_tile_tf32<{s.k_step}>"
    if kind:
        tile = f"aic_mma_tile_16<{s.k_step}, {'true' if kind == 'bf16' else 'false'}>"
    writer.emit(f"{tile}({n[s.acc]}, {n[s.a]}, {n[s.b]});", depth)
    return True
