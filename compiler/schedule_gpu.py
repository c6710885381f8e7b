"""GPU schedules: loop-IR kernels bound to CUDA grids (blocks and threads).

`schedule_gpu_program(program)` rewrites every kernel of a program built for the cuda
target into one or more *launches*: kernels whose outermost loops have the kinds
`GPU_BLOCK_X` and `GPU_THREAD_X`, so that a launch's grid and block sizes are the extents
of those loops (codegen/cuda.py reads them back). Rules, per top-level statement of a
kernel body (each becomes its own launch, in order, over the same buffers):

0. *tiled matmul* (compiler/schedule_gpu_matmul.py): a contraction's plain nest gets
   shared-memory tiles of A and B and a 4x4 register tile per thread; with few output tiles and a
   long K, two launches (compiler/schedule_gpu_splitk.py): partial tiles per K slice into a
   workspace (an extra last parameter, one arena region for the program), then their sum and the
   epilogue;
1. *row reduction* (compiler/schedule_gpu_reduce.py): a parallel nest whose per-row body
   reduces long serial loops into one-element accumulators (softmax, layer norm, reduce
   ops, pooling over big windows) gets one block per row; the row's loops are strided over
   the block's threads and each accumulator is combined with warp shuffles and one
   shared-memory exchange;
2. *elementwise*: the perfect nest of loops whose iterations are independent (the CPU
   scheduler's test) is flattened onto one thread per iteration, 256 threads a block; where the
   innermost loop allows, an iteration takes four elements with 16-byte loads and stores
   (compiler/schedule_gpu_vector.py);
3. *fallback*: anything else (a scalar reduction over the whole tensor, a data-dependent
   scatter) runs in one thread, so every kernel the CPU lowers also runs on a GPU.

A kernel of a model compiled for ranges of sizes has loop extents that are expressions of its
symbols (compiler/schedule_gpu_grid.py, `RunSizes`): the same rules apply with those extents (a
flat index guarded by `flat < total`, rows and tiles counted at run time), the schedule's choices
(threads per block, whether a product is big enough to tile) are made at the symbols' opt sizes,
loops that every index walks as one range are merged first (compiler/schedule_gpu_merge.py: no
division by a run-time size per element), 16-byte vectors only where the strides are provably
multiples of 4, and each launch's grid extent is an expression of the dims slot that the host
evaluates before the launch.

Every launch is checked by the loop-IR verifier (ir/loop_verify.py) for a GPU: bounds, scopes,
barriers only where every thread of the block reaches them (GPU-only statements are verified
through their `footprint`).
"""

from __future__ import annotations

from dataclasses import replace

from aic.ir.dtypes import DType
from aic.ir.loop import (
    INDEX,
    Bin,
    Buffer,
    Const,
    For,
    If,
    IfStep,
    Kernel,
    KernelCall,
    Let,
    LoopStep,
    Program,
    ProgramBuffer,
    Seq,
    Step,
    Stmt,
    Var,
)
from aic.ir.loop_tools import binop, map_stmt, static_int, stmts_of
from aic.ir.loop_verify import verify_kernel

from .memory import align
from .schedule_gpu_grid import (
    MAX_GRID_X,
    RunSizes,
    bind_lets,
    ceil_div,
    extent_product,
    flat_index,
    grid_loops,
    inside_grid,
    parallel_chain,
    peel_sizes,
)
from .schedule_gpu_matmul import tiled_matmul
from .schedule_gpu_merge import merge_walked
from .schedule_gpu_reduce import row_reduction
from .schedule_gpu_splitk import WORKSPACE, split_k
from .schedule_gpu_vector import by_four

THREADS = 256  # threads per block of an elementwise launch


def schedule_gpu_program(program: Program, tensor_cores: bool = True) -> Program:
    """`program` with each kernel call replaced by the calls of its GPU launches; float32
    contractions use TF32 tensor cores unless `tensor_cores` is False."""
    done: dict[int, list[Kernel]] = {}
    workspace = ProgramBuffer(WORKSPACE, DType.float32, (0,), "arena")  # shared by all split-K launches

    def steps(calls: list[Step]) -> list[Step]:
        out: list[Step] = []
        for step in calls:
            if isinstance(step, KernelCall):
                if id(step.kernel) not in done:
                    done[id(step.kernel)] = schedule_gpu(step.kernel, tensor_cores)
                out += [KernelCall(k, [*step.args, workspace] if "workspace" in k.attrs else step.args)
                        for k in done[id(step.kernel)]]  # fmt: skip
            elif isinstance(step, IfStep):
                out.append(IfStep(step.cond, steps(step.then), steps(step.orelse)))
            else:
                out.append(LoopStep(step.counter, steps(step.body), step.trips, step.cond))
        return out

    calls = steps(program.calls)
    kernels = [k for ks in done.values() for k in ks]
    arena_bytes, attrs = program.arena_bytes, {**program.attrs, "gpu_scheduled": True}
    floats = max((int(k.params[-1].size) for k in kernels if "workspace" in k.attrs), default=0)
    if floats:  # the workspace after the planned arena (at the largest sizes)
        workspace.shape, workspace.offset = (floats,), align(arena_bytes)
        arena_bytes = workspace.offset + 4 * floats
        attrs["splitk_workspace_bytes"] = 4 * floats
    return replace(program, kernels=kernels, calls=calls, arena_bytes=arena_bytes, attrs=attrs)


def schedule_gpu(kernel: Kernel, tensor_cores: bool = True) -> list[Kernel]:
    """The launches that run `kernel` on a GPU, in order."""
    sizes, parts = launch_parts(kernel)
    out = []
    for i, part in enumerate(parts):
        name = kernel.name if len(parts) == 1 else f"{kernel.name}_{i}"
        split = split_k(part, tensor_cores, sizes)
        if split is not None:
            out += _split_launches(kernel, name, sizes, *split)
            continue
        bound = (tiled_matmul(part, tensor_cores, sizes) or row_reduction(part, sizes)
                 or _elementwise(part, sizes, vectors=len(kernel.params) <= 64)  # the runtime checks 64 parameters
                 or _single_thread(part))  # fmt: skip
        body, rule = bound
        body = inside_grid(body, sizes)
        attrs = {**kernel.attrs, "gpu_rule": rule}
        out.append(Kernel(name, kernel.params, body, attrs))
        verify_kernel(Kernel(name, kernel.params, map_stmt(body, _footprint)), gpu=True)
    return out


def _split_launches(kernel: Kernel, name: str, sizes: RunSizes, partial: Stmt, rule: str, reduce: Stmt,
                    workspace: Buffer) -> list[Kernel]:
    """The two launches of a split-K contraction (compiler/schedule_gpu_splitk.py): partial tiles into
    `workspace` (an extra last parameter), then their sum in slice order with the epilogue."""
    params = [*kernel.params, workspace]
    summed = _elementwise(reduce, sizes, vectors=len(params) <= 64)
    assert summed is not None, f"kernel {name}: split-K sum of the partial tiles is not elementwise"
    launches = [(name, partial, rule), (f"{name}_reduce", summed[0], summed[1].replace("elementwise", "splitk-reduce"))]
    out = []
    for launch, body, launch_rule in launches:
        body = inside_grid(body, sizes)
        attrs = {**kernel.attrs, "gpu_rule": launch_rule, "workspace": True, "part": name}
        out.append(Kernel(launch, params, body, attrs))
        verify_kernel(Kernel(launch, params, map_stmt(body, _footprint)), gpu=True)
    return out


def launch_parts(kernel: Kernel) -> tuple[RunSizes, list[Stmt]]:
    """The run-time sizes `kernel` binds at its top, and the statements under them that become one
    launch each (in order)."""
    sizes, body = peel_sizes(kernel.body, kernel.attrs.get("typical_sizes", {}))
    return sizes, _merge_loop_free(body.stmts if isinstance(body, Seq) else [body])


def _merge_loop_free(parts: list[Stmt]) -> list[Stmt]:
    """`parts` with each run of consecutive loop-free statements (a ranged model's output sizes, a
    few scalar stores) joined into one part: one single-thread launch instead of one each."""
    out: list[Stmt] = []
    for part in parts:
        if out and _loop_free(part) and _loop_free(out[-1]):
            prev = out[-1]
            out[-1] = Seq([*(prev.stmts if isinstance(prev, Seq) else [prev]), part])
        else:
            out.append(part)
    return out


def _loop_free(s: Stmt) -> bool:
    return not any(isinstance(x, For) for x in stmts_of(s))


def _footprint(s: Stmt) -> Stmt | None:
    footprint = getattr(s, "footprint", None)
    return footprint() if footprint is not None else None


def _elementwise(part: Stmt, sizes: RunSizes, vectors: bool = True) -> tuple[Stmt, str] | None:
    chain = parallel_chain(part)
    if not chain:
        return None
    loops, _, inner = merge_walked(chain, [], chain[-1].body)  # no division by a run-time size per element
    if len(loops) < len(chain):
        chain = _nest(loops, inner)
    four = by_four(chain, frozenset(sizes.hi)) if vectors else None
    rule = "elementwise-vec4" if four else "elementwise"
    chain = four or chain
    total = extent_product(chain)
    largest = sizes.upper(total)
    if largest is None:
        return None
    if largest == 0:
        return grid_loops(1, 1, lambda bx, tx: Seq([])), "empty"
    threads = min(THREADS, -(-largest // 32) * 32)
    if -(-largest // threads) > MAX_GRID_X:
        return None
    blocks = ceil_div(total, threads)
    inner = chain[-1].body

    def body(bx: Var, tx: Var) -> Stmt:
        g = Var("gid")
        flat = Bin("add", Bin("mul", bx, Const(threads, INDEX)), tx)
        guarded = bind_lets(flat_index(chain, g), inner)
        n = static_int(total)
        if n is None or n != static_int(binop("mul", blocks, Const(threads, INDEX))):
            guarded = If(Bin("lt", g, total), guarded)
        return Let(g, flat, guarded)

    return grid_loops(blocks, threads, body), rule


def _nest(loops: list[For], body: Stmt) -> list[For]:
    """Serial loops with the variables and extents of `loops`, nested in that order around `body`."""
    out: list[For] = []
    for loop in reversed(loops):
        body = For(loop.var, loop.extent, body)
        out.append(body)
    return out[::-1]


def _single_thread(part: Stmt) -> tuple[Stmt, str]:
    return grid_loops(1, 1, lambda bx, tx: part), "single-thread"
