"""Loop-IR helpers the GPU schedules share: the parallel loops of a nest, flat thread indices,
and block/thread grid loops (compiler/schedule_gpu*.py)."""

from __future__ import annotations

from aic.ir.loop import INDEX, Bin, Const, Expr, For, ForKind, Let, Stmt, Var
from aic.ir.loop_tools import static_int

from .schedule import _independent, _scatters

MAX_GRID_X = (1 << 31) - 1


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
