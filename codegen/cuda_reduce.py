"""Block reductions for the cuda target: warp shuffles plus one shared-memory exchange.

`BlockReduce` is a GPU-only loop-IR statement made by compiler/schedule_gpu_reduce.py:
every thread of the block holds a partial value in the one-element accumulator `acc`;
afterwards every thread holds the combination (`op`: add, mul, max, min) of all partials.
It renders as a call of `aic_block_reduce` (below): a butterfly of `__shfl_xor_sync` in
each warp, one slot per warp in shared memory (`scratch`, 32 values) between two
`__syncthreads`, then every thread folds the warp totals in the same order. All threads
of the block must reach it (the schedule keeps it outside any condition).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aic.ir.dtypes import DType
from aic.ir.loop import INDEX, Barrier, Buffer, Const, Load, Seq, Stmt, Store

from .cuda_expr import reg_type

WARP_PRELUDE = r"""
template <class T, class F> AIC_DEVICE T aic_block_reduce(T v, T *scratch, F op) {
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5, warps = ((int)blockDim.x + 31) >> 5;
    __syncthreads(); /* the previous reduction has read the scratch */
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = scratch[0];
    for (int w = 1; w < warps; ++w) v = op(v, scratch[w]);
    return v;
}
"""


@dataclass(eq=False)
class BlockReduce(Stmt):
    """Combine the per-thread values of `acc[0]` across the block with `op`, in place."""

    acc: Buffer
    op: str  # "add" | "mul" | "max" | "min"
    scratch: Buffer  # shared, 32 elements of the accumulator's register type

    def footprint(self) -> Stmt:
        """Loop IR with the same barriers and accumulator access, for the verifier (ir/loop_verify.py)."""
        zero = Const(0, INDEX)
        return Seq([Barrier(), Store(self.acc, zero, Load(self.acc, zero)), Barrier()])


def _combine(op: str, dt: DType) -> str:
    if op == "add":
        return "a + b"
    if op == "mul":
        return "a * b"
    if dt.is_float:
        wide = dt is DType.float64
        return f"aic_f{op}{'' if wide else 'f'}(a, b)"
    return f"aic_i{op}<{reg_type(dt)}>(a, b)"


def render_gpu_stmt(writer: Any, s: Stmt, depth: int) -> bool:
    """Render the GPU-only statements of this module; False for anything else."""
    if not isinstance(s, BlockReduce):
        return False
    writer.syncs = True
    dt, e = s.acc.dtype, writer.expr
    t = reg_type(dt)
    acc, scratch = writer.names[s.acc], writer.names[s.scratch]
    value = f"aic_block_reduce<{t}>({e.load(dt, f'{acc}[0]')}, ({t} *){scratch}, []({t} a, {t} b) {{ return {_combine(s.op, dt)}; }})"  # noqa: E501
    writer.emit(f"{acc}[0] = {e.store_value(dt, value)};", depth)
    return True
