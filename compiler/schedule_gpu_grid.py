"""Loop-IR helpers the GPU schedules share: the parallel loops of a nest, flat thread indices,
block/thread grid loops (compiler/schedule_gpu*.py), and the run-time sizes of a kernel compiled
for ranges of sizes.

Run-time sizes: a kernel of a ranged model binds each symbol it reads at its top,
`let dim_seq = min(max(dims[k], lo), hi)` (compiler/lower/symbols.py), and its loop extents are
expressions of those variables. `peel_sizes` takes the bindings off, so the rules see the loops;
`RunSizes` bounds an extent (`upper`, for what must hold at every size: grid limits) and
estimates it (`typical`, at the range's opt size: what the schedule is chosen for);
`inside_grid` puts the bindings back inside a launch's grid loops and writes the grid extent in
terms of the dims slot itself, which the host evaluates before the launch (codegen/cuda.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aic.ir.loop import INDEX, Bin, Const, Expr, For, ForKind, Let, Load, Stmt, Var
from aic.ir.loop_tools import binop, exprs_of, inline_lets, static_int, subst

from .schedule import _independent, _scatters

MAX_GRID_X = (1 << 31) - 1


@dataclass(frozen=True)
class RunSizes:
    """The symbol variables a kernel binds at its top: their values (`lets`), largest and opt sizes."""

    lets: list[tuple[Var, Expr]] = field(default_factory=list)
    hi: dict[Var, Expr] = field(default_factory=dict)
    opt: dict[Var, Expr] = field(default_factory=dict)

    def upper(self, e: Expr) -> int | None:
        """`e` at the largest sizes (extents grow with the sizes), or None when it is no such expression."""
        return static_int(subst(e, self.hi))

    def typical(self, e: Expr) -> int | None:
        """`e` at the opt sizes."""
        return static_int(subst(e, self.opt))


def peel_sizes(body: Stmt, typical: dict[Var, int]) -> tuple[RunSizes, Stmt]:
    """The symbol bindings at the top of a kernel body (`let v = min(max(dims[k], lo), hi)` for the
    symbols of `typical`, the kernel's symbols and their opt sizes) and the body under them."""
    sizes = RunSizes()
    while isinstance(body, Let) and body.var in typical and (hi := _range_of(body.value)) is not None:
        sizes.lets.append((body.var, body.value))
        sizes.hi[body.var] = Const(hi, INDEX)
        sizes.opt[body.var] = Const(typical[body.var], INDEX)
        body = body.body
    return sizes, body


def _range_of(value: Expr) -> int | None:
    """The upper bound of `min(max(dims[k], lo), hi)` with a constant k (a symbol's binding)."""
    match value:
        case Bin(op="min", a=Bin(op="max", a=Load(index=Const()) as load, b=Const()), b=Const(value=hi)):
            if load.buffer.dtype == INDEX:
                return int(hi)
    return None


def inside_grid(bound: Stmt, sizes: RunSizes) -> Stmt:
    """A launch's grid loops with the symbol bindings moved inside them, and its grid extents
    written in terms of the dims slot (the host computes them)."""
    if not sizes.lets:
        return bound
    values = dict(sizes.lets)
    loops: list[For] = []
    s = bound
    while isinstance(s, For) and s.kind.is_gpu:
        loops.append(s)
        s = s.body
    inner = bind_lets(sizes.lets, s)
    for loop in reversed(loops):
        inner = For(loop.var, inline_lets(loop.extent, values), inner, loop.kind, loop.start)
    return inner


def parallel_chain(s: Stmt) -> list[For]:
    """The outermost loops of `s` whose iterations may run at once (a perfect nest); an extent may
    be a run-time size, but not depend on an outer loop of the nest."""
    chain: list[For] = []
    while isinstance(s, For) and _outer_extent(s, chain) and _independent(s) and not _scatters(s):
        chain.append(s)
        s = s.body
    return chain


def _outer_extent(loop: For, chain: list[For]) -> bool:
    if static_int(loop.extent) is not None:
        return True
    outer = {lp.var for lp in chain}
    return not any(x in outer for e in (loop.extent, loop.start) for x in exprs_of(e))


def extent_product(loops: list[For]) -> Expr:
    """The iterations of a nest of `loops` (a constant when every extent is one)."""
    total: Expr = Const(1, INDEX)
    for lp in loops:
        total = binop("mul", total, lp.extent)
    return total


def ceil_div(e: Expr, d: int) -> Expr:
    """ceil(e / d) of a size."""
    return binop("div", binop("add", e, Const(d - 1, INDEX)), Const(d, INDEX))


def flat_index(chain: list[For], flat: Expr) -> list[tuple[Var, Expr]]:
    """Bindings of each loop variable of `chain` from a flat iteration number."""
    binds: list[tuple[Var, Expr]] = []
    stride: Expr = Const(1, INDEX)
    for loop in reversed(chain):
        idx = binop("div", flat, stride)
        if loop is not chain[0]:
            idx = binop("mod", idx, loop.extent)
        if not (isinstance(loop.start, Const) and loop.start.value == 0):
            idx = Bin("add", loop.start, idx)
        binds.append((loop.var, idx))
        stride = binop("mul", stride, loop.extent)
    return list(reversed(binds))


def bind_lets(binds: list[tuple[Var, Expr]], body: Stmt) -> Stmt:
    for var, value in reversed(binds):
        body = Let(var, value, body)
    return body


def grid_loops(blocks: int | Expr, threads: int, body_of: callable) -> Stmt:  # type: ignore[valid-type]
    """for blockIdx.x in blocks: for threadIdx.x in threads: body_of(block var, thread var)."""
    bx, tx = Var("bx"), Var("tx")
    inner = For(tx, Const(threads, INDEX), body_of(bx, tx), ForKind.GPU_THREAD_X)
    extent = blocks if isinstance(blocks, Expr) else Const(blocks, INDEX)
    return For(bx, extent, inner, ForKind.GPU_BLOCK_X)
