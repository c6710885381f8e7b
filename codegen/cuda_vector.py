"""16-byte vector accesses for the cuda target (`float4`, `int4`, `uint4`).

`VectorLoad` and `VectorStore` are GPU-only loop-IR statements made by
compiler/schedule_gpu_vector.py: four consecutive 4-byte elements of a buffer, starting at a
multiple of 4, move in one 16-byte access between the buffer and a 4-element stack stage.
They render as `aic_ld4`/`aic_st4` (below): one `ld.global.v4`/`st.global.v4` on a GPU; in the
emulator the same access, after checking that the address is 16-byte aligned (a misaligned
vector access faults on a GPU). The kernel's pointer parameters they use are recorded
(`CudaKernel.aligned`) so the runtime checks each launch's pointers before it goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aic.ir.dtypes import DType
from aic.ir.loop import INDEX, Bin, Buffer, Const, Expr, For, ForKind, Load, Stmt, Store, Var

LANES = 4
VECTOR_TYPES = {DType.float32: "float4", DType.int32: "int4", DType.uint32: "uint4"}

VECTOR_PRELUDE = r"""
#ifdef AIC_EMULATE
#define AIC_CHECK_ALIGNED16(p) aic_emu_check_aligned16(p)
#else
#define AIC_CHECK_ALIGNED16(p)
#endif
template <class V, class T> AIC_DEVICE void aic_ld4(T *dst, const T *src) {
    AIC_CHECK_ALIGNED16(src);
    const V v = *(const V *)src;
    dst[0] = v.x; dst[1] = v.y; dst[2] = v.z; dst[3] = v.w;
}
template <class V, class T> AIC_DEVICE void aic_st4(T *dst, const T *src) {
    AIC_CHECK_ALIGNED16(dst);
    V v;
    v.x = src[0]; v.y = src[1]; v.z = src[2]; v.w = src[3];
    *(V *)dst = v;
}
"""


@dataclass(eq=False)
class VectorLoad(Stmt):
    """stage[0..4) = buffer[index .. index + 4) in one aligned 16-byte access."""

    stage: Buffer  # stack, 4 elements
    buffer: Buffer
    index: Expr  # a multiple of 4

    def footprint(self) -> Stmt:
        """The same accesses as scalar loop IR, for the verifier (ir/loop_verify.py)."""
        lane = Var("lane")
        return For(lane, Const(LANES, INDEX), Store(self.stage, lane, Load(self.buffer, Bin("add", self.index, lane))),
                   ForKind.UNROLLED)  # fmt: skip


@dataclass(eq=False)
class VectorStore(Stmt):
    """buffer[index .. index + 4) = stage[0..4) in one aligned 16-byte access."""

    buffer: Buffer
    index: Expr  # a multiple of 4
    stage: Buffer  # stack, 4 elements

    def footprint(self) -> Stmt:
        lane = Var("lane")
        return For(lane, Const(LANES, INDEX), Store(self.buffer, Bin("add", self.index, lane), Load(self.stage, lane)),
                   ForKind.UNROLLED)  # fmt: skip


def render_vector(writer: Any, s: Stmt, depth: int) -> bool:
    """Render the statements of this module; False for anything else."""
    if isinstance(s, VectorLoad):
        writer.aligned.add(s.buffer)
        vt, n = VECTOR_TYPES[s.buffer.dtype], writer.names
        writer.emit(f"aic_ld4<{vt}>({n[s.stage]}, {n[s.buffer]} + {writer.expr(s.index)});", depth)
        return True
    if isinstance(s, VectorStore):
        writer.aligned.add(s.buffer)
        vt, n = VECTOR_TYPES[s.buffer.dtype], writer.names
        writer.emit(f"aic_st4<{vt}>({n[s.buffer]} + {writer.expr(s.index)}, {n[s.stage]});", depth)
        return True
    return False
