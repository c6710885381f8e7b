"""Split-K for GPU contractions with few output tiles (a GEMV-like product, a late conv stage at batch 1).

The tiled contraction (compiler/schedule_gpu_matmul.py) launches one block per 64x64 output tile;
a product with a handful of tiles and a long K (ResNet-50's FC: 16 tiles, K = 2048; its last 3x3
convs: 8 tiles, K = 4608) leaves most SMs idle while each block walks all of K. When the output has
fewer than `FEW_TILES` tiles and K >= `LONG_K` (at the opt sizes), K is cut into S slices so that
tiles x S is about one wave of `SMS` blocks, each slice at least `MIN_STEPS` K steps. M may be
below the tiled rule's minimum: a GEMV (batch 1) with a long K is otherwise a row reduction whose
threads read a row-major weight column with a stride of N, while the tiles read it coalesced.

1. the *partial* launch (`tiled-matmul-tf32-splitk8`, ...): the tiled GEMM with S times the blocks,
   each block computing its tile over one K slice into a float32 workspace[S, batch, M, N];
2. the *reduce* launch (`splitk-reduce`): one thread per output (the elementwise rule) sums the S
   partials in slice order and runs the contraction's epilogue (bias, residual, activation, output
   dtype) - deterministic, no atomics.

The workspace is one arena region that every split-K launch of a program shares (launches run in
order on one stream), sized for the largest sizes of a ranged model (S is chosen at the opt sizes;
no split where that workspace would exceed `WORKSPACE_LIMIT`).
"""

from __future__ import annotations

from aic.ir.dtypes import DType
from aic.ir.loop import INDEX, Allocate, Bin, Buffer, Const, Expr, For, Let, Load, Seq, Stmt, Store, Var
from aic.ir.loop_tools import binop, static_int

from .schedule_gpu_grid import RunSizes, extent_product
from .schedule_gpu_matmul import BK, BM, BN, MIN_SIZE, Gemm, match_gemm, tiled_matmul

SMS = 132  # streaming multiprocessors of an H100/H200 (an A100 has 108): one wave of blocks
FEW_TILES = 64  # fewer output tiles than this (half a wave) ...
LONG_K = 512  # ... and K at least this long: split K
MIN_STEPS = 4  # K steps (of BK) per slice at least
MAX_SLICES = 32
WORKSPACE_LIMIT = 64 << 20  # bytes: a ranged model whose largest sizes would need more is not split
WORKSPACE = "splitk_workspace"


def split_k(part: Stmt, tensor_cores: bool, sizes: RunSizes) -> tuple[Stmt, str, Stmt, Buffer] | None:
    """(the partial launch, its rule, the reduce part to schedule as elementwise, the workspace) for a
    contraction `part` worth splitting along K, else None."""
    g = match_gemm(part)
    if g is None or g.acc.dtype is not DType.float32:
        return None
    slices = slice_count(g, sizes)
    if slices < 2:
        return None
    m, n, _ = g.extents
    floats = sizes.upper(binop("mul", binop("mul", extent_product(g.batch), m), n))
    if floats is None:
        return None
    if 4 * slices * floats > WORKSPACE_LIMIT:
        return None
    workspace = Buffer(WORKSPACE, DType.float32, slices * floats)
    bound = tiled_matmul(part, tensor_cores, sizes, (slices, workspace))
    if bound is None:
        return None
    return bound[0], bound[1], reduce_part(g, slices, workspace), workspace


def slice_count(g: Gemm, sizes: RunSizes) -> int:
    """S for `g` at the opt sizes: 1 (no split) unless the output has few tiles and K is long."""
    m, n, k = (sizes.typical(e) for e in g.extents)
    batch = sizes.typical(extent_product(g.batch))
    if None in (m, n, k, batch) or min(n, k) < MIN_SIZE:  # type: ignore[operator]  # M may be 1 (a GEMV)
        return 1
    tiles = batch * -(-m // BM) * -(-n // BN)  # type: ignore[operator]
    if tiles >= FEW_TILES or k < LONG_K:  # type: ignore[operator]
        return 1
    steps = -(-k // BK)  # type: ignore[operator]
    slices = min(SMS // tiles, steps // MIN_STEPS, MAX_SLICES)
    if slices < 2:
        return 1
    per = -(-steps // slices)
    return -(-steps // per)  # no empty slice: the last one is the shorter


def reduce_part(g: Gemm, slices: int, workspace: Buffer) -> Stmt:
    """The nest over the outputs of `g` (batch, M, N) that sums the S partials of each in slice order
    into the contraction's accumulator and runs its epilogue."""
    m, n, _ = g.extents
    s = Var("slice")
    matrix = binop("add", binop("mul", s, extent_product(g.batch)), _flat(g.batch))
    index = binop("add", binop("mul", binop("add", binop("mul", matrix, m), _flat(g.ms)), n), _flat(g.ns))
    zero = Const(0, INDEX)
    total = For(s, Const(slices, INDEX), Store(g.acc, zero, Bin("add", Load(g.acc, zero), Load(workspace, index))))
    epilogue = g.epilogue.stmts if isinstance(g.epilogue, Seq) else [g.epilogue]
    body: Stmt = Allocate(g.acc, Seq([Store(g.acc, zero, Const(0.0, g.acc.dtype)), total, *epilogue]))
    loops = [*g.batch, *g.ms, *g.ns]
    for loop in loops:  # one-iteration loops (a GEMV's row) as bindings inside the nest
        if static_int(loop.extent) == 1:
            body = Let(loop.var, loop.start, body)
    for loop in reversed(loops):
        if static_int(loop.extent) != 1:
            body = For(loop.var, loop.extent, body, start=loop.start)
    return body


def _flat(loops: list[For]) -> Expr:
    """The row-major flat position of the loops' variables in their nest (0 for no loops)."""
    flat: Expr = Const(0, INDEX)
    for loop in loops:
        if static_int(loop.extent) != 1:
            flat = binop("add", binop("mul", flat, loop.extent), binop("sub", loop.var, loop.start))
    return flat

