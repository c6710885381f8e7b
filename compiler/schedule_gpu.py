"""GPU schedules: loop-IR kernels bound to CUDA grids (blocks and threads).

`schedule_gpu_program(program)` rewrites every kernel of a program built for the cuda
target into one or more *launches*: kernels whose outermost loops have the kinds
`GPU_BLOCK_X` and `GPU_THREAD_X`, so that a launch's grid and block sizes are the extents
of those loops (codegen/cuda.py reads them back). Rules, per top-level statement of a
kernel body (each becomes its own launch, in order, over the same buffers):

0. *tiled matmul* (compiler/schedule_gpu_matmul.py): a contraction's plain nest gets
   shared-memory tiles of A and B and a 4x4 register tile per thread;
1. *row reduction* (compiler/schedule_gpu_reduce.py): a parallel nest whose per-row body
   reduces long serial loops into one-element accumulators (softmax, layer norm, reduce
   ops, pooling over big windows) gets one block per row; the row's loops are strided over
   the block's threads and each accumulator is combined with warp shuffles and one
   shared-memory exchange;
2. *elementwise*: the perfect nest of loops whose iterations are independent (the CPU
   scheduler's test) is flattened onto one thread per iteration, 256 threads a block;
3. *fallback*: anything else (a scalar reduction over the whole tensor, a data-dependent
   scatter) runs in one thread, so every kernel the CPU lowers also runs on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from aic.ir.loop import (
    INDEX,
    Bin,
    Const,
    Expr,
    For,
    ForKind,
    If,
    IfStep,
    Kernel,
    KernelCall,
    Let,
    LoopStep,
    Program,
    Seq,
    Step,
    Stmt,
    Var,
)
from aic.ir.loop_tools import static_int

from .schedule import _independent, _scatters

THREADS = 256  # threads per block of an elementwise launch
MAX_GRID_X = (1 << 31) - 1


@dataclass(frozen=True)
class Launch:
    """Grid and block sizes of a GPU-bound kernel, read from its outermost loops."""

    grid: tuple[int, int, int]
    block: tuple[int, int, int]


def schedule_gpu_program(program: Program, tensor_cores: bool = True) -> Program:
    """`program` with each kernel call replaced by the calls of its GPU launches; float32
    contractions use TF32 tensor cores unless `tensor_cores` is False."""
    done: dict[int, list[Kernel]] = {}

    def steps(calls: list[Step]) -> list[Step]:
        out: list[Step] = []
        for step in calls:
            if isinstance(step, KernelCall):
                if id(step.kernel) not in done:
                    done[id(step.kernel)] = schedule_gpu(step.kernel, tensor_cores)
                out += [KernelCall(k, step.args) for k in done[id(step.kernel)]]
            elif isinstance(step, IfStep):
                out.append(IfStep(step.cond, steps(step.then), steps(step.orelse)))
            else:
                out.append(LoopStep(step.counter, steps(step.body), step.trips, step.cond))
        return out

    calls = steps(program.calls)
    kernels = [k for ks in done.values() for k in ks]
    return replace(program, kernels=kernels, calls=calls, attrs={**program.attrs, "gpu_scheduled": True})


def schedule_gpu(kernel: Kernel, tensor_cores: bool = True) -> list[Kernel]:
    """The launches that run `kernel` on a GPU, in order."""
    from .schedule_gpu_matmul import tiled_matmul
    from .schedule_gpu_reduce import row_reduction

    parts = kernel.body.stmts if isinstance(kernel.body, Seq) else [kernel.body]
    out = []
    for i, part in enumerate(parts):
        name = kernel.name if len(parts) == 1 else f"{kernel.name}_{i}"
        bound = tiled_matmul(part, tensor_cores) or row_reduction(part) or _elementwise(part) or _single_thread(part)
        body, rule = bound
        attrs = {**kernel.attrs, "gpu_rule": rule}
        out.append(Kernel(name, kernel.params, body, attrs))
    return out


def launch_of(kernel: Kernel) -> Launch:
    """The grid and block sizes of a kernel made by `schedule_gpu`."""
    grid, block = [1, 1, 1], [1, 1, 1]
    s: Stmt = kernel.body
    while isinstance(s, For) and s.kind.is_gpu:
        axis = "xyz".index(s.kind.value[-1])
        sizes = grid if s.kind.value.startswith("block") else block
        sizes[axis] = static_int(s.extent) or 1
        s = s.body
    return Launch(tuple(grid), tuple(block))  # type: ignore[arg-type]


def parallel_chain(s: Stmt) -> list[For]:
    """The outermost loops of `s` whose iterations may run at once (a perfect nest)."""
    chain: list[For] = []
    while isinstance(s, For) and static_int(s.extent) is not None and _independent(s) and not _scatters(s):
        chain.append(s)
        s = s.body
    return chain


def flat_index(chain: list[For], flat: Expr) -> list[tuple[Var, Expr]]:
    """Bindings of each loop variable of `chain` from a flat iteration number."""
    binds, stride = [], 1
    for loop in reversed(chain):
        n = static_int(loop.extent) or 1
        idx = flat if stride == 1 else Bin("div", flat, Const(stride, INDEX))
        if loop is not chain[0]:
            idx = Bin("mod", idx, Const(n, INDEX))
        if not (isinstance(loop.start, Const) and loop.start.value == 0):
            idx = Bin("add", loop.start, idx)
        binds.append((loop.var, idx))
        stride *= n
    return list(reversed(binds))


def bind_lets(binds: list[tuple[Var, Expr]], body: Stmt) -> Stmt:
    for var, value in reversed(binds):
        body = Let(var, value, body)
    return body


def grid_loops(blocks: int, threads: int, body_of: callable) -> Stmt:  # type: ignore[valid-type]
    """for blockIdx.x in blocks: for threadIdx.x in threads: body_of(block var, thread var)."""
    bx, tx = Var("bx"), Var("tx")
    inner = For(tx, Const(threads, INDEX), body_of(bx, tx), ForKind.GPU_THREAD_X)
    return For(bx, Const(blocks, INDEX), inner, ForKind.GPU_BLOCK_X)


def _elementwise(part: Stmt) -> tuple[Stmt, str] | None:
    chain = parallel_chain(part)
    if not chain:
        return None
    total = 1
    for loop in chain:
        total *= static_int(loop.extent) or 1
    if total == 0:
        return grid_loops(1, 1, lambda bx, tx: Seq([])), "empty"
    threads = min(THREADS, -(-total // 32) * 32)
    blocks = -(-total // threads)
    if blocks > MAX_GRID_X:
        return None
    inner = chain[-1].body

    def body(bx: Var, tx: Var) -> Stmt:
        g = Var("gid")
        flat = Bin("add", Bin("mul", bx, Const(threads, INDEX)), tx)
        guarded = bind_lets(flat_index(chain, g), inner)
        if blocks * threads != total:
            guarded = If(Bin("lt", g, Const(total, INDEX)), guarded)
        return Let(g, flat, guarded)

    return grid_loops(blocks, threads, body), "elementwise"


def _single_thread(part: Stmt) -> tuple[Stmt, str]:
    return grid_loops(1, 1, lambda bx, tx: part), "single-thread"
