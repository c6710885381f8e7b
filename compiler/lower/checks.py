"""Run-time checks of index data: the kernels' error channel.

ONNX calls an index outside its axis an error (Gather, GatherElements, GatherND, ScatterND,
ScatterElements, RoiAlign's batch_indices, MaxRoiPool's batch column, a CumSum axis given at
run time). Kernels still clamp such an index, so they never touch memory outside a buffer;
a check, run before the kernel's loops (which stay as they were, vectorizable), records the
first bad value in the model's error slot: four int64 in the arena holding the code
(0: none, `OUT_OF_RANGE`), the site (the program-wide number of the check), the value and
its flat position in the index tensor (-1 for a scalar). `aic_run` clears the slot before a
run and, when a code is set after it, fails with AIC_ERROR_KERNEL and a message made of the
site's text (node, op, what is checked and its valid range) and the value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from aic.ir.graph import Node
from aic.ir.loop import INDEX, Bin, Cast, Expr, If, Load, Stmt, Store
from aic.ir.loop_tools import seq

from .core import LowerCtx, Tensor, idx, linear
from .sizes import Size, bounds

OUT_OF_RANGE = 1


def site_text(node: Node, what: str) -> str:
    return f"node '{node.name}' ({node.op}): {what}"


def report(ctx: LowerCtx, text: str) -> Callable[[Expr, Expr, Expr], Stmt]:
    """A new check site described by `text`; returns `(bad, value, position) -> Stmt` recording
    the value when `bad` holds and no earlier error is recorded."""
    slot = ctx.error_slot()
    site = ctx.site_base + len(ctx.sites)
    ctx.sites.append(text)

    def record(bad: Expr, value: Expr, position: Expr) -> Stmt:
        value = value if value.dtype == INDEX else Cast(INDEX, value)
        write = seq(Store(slot, idx(0), idx(OUT_OF_RANGE)), Store(slot, idx(1), idx(site)),
                    Store(slot, idx(2), value), Store(slot, idx(3), position))  # fmt: skip
        return If(bad, If(Bin("eq", Load(slot, idx(0)), idx(0)), write))

    return record


def in_range(values: np.ndarray, size: Size, negative: bool) -> bool:
    """Whether every value indexes an axis of `size` (of any size a run-time one may take)."""
    size = bounds(size)[0]
    values = np.asarray(values).astype(np.int64)
    return bool(np.all((values >= (-size if negative else 0)) & (values < size)))


def check_indices(
    ctx: LowerCtx,
    node: Node,
    t: Tensor,
    sizes: Sequence[int],
    what: str,
    negative: bool = True,
    constant: np.ndarray | None = None,
) -> None:
    """Check at run time that every element of the index tensor `t` lies in [-size, size)
    ([0, size) without `negative`). `sizes` has one entry (every element indexes one axis) or one
    per position along t's last axis (index tuples: GatherND, ScatterND), named `what[d]`.
    A `constant` index tensor is checked here instead: in range, no run-time check."""
    tuples = len(sizes) > 1
    if constant is not None:
        values = np.asarray(constant).reshape(-1, len(sizes)) if tuples else np.asarray(constant)
        if all(in_range(values[..., d] if tuples else values, n, negative) for d, n in enumerate(sizes)):
            return
    records = []
    for d, n in enumerate(sizes):
        lo = -n if negative else 0
        label = f"{what}[..., {d}]" if tuples else what
        records.append((n, lo, report(ctx, site_text(node, f"{label} must be in [{lo}, {n - 1}]"))))

    def body(index: list[Expr]) -> Stmt:
        stmts = []
        for d, (n, lo, record) in enumerate(records):
            at = [*index, idx(d)] if tuples else index
            raw = t.at(at)
            v = ctx.let(raw if raw.dtype == INDEX else Cast(INDEX, raw), "ck")
            bad = Bin("or", Bin("lt", v, idx(lo)), Bin("ge", v, idx(n)))
            stmts.append(record(bad, v, linear(at, t.shape)))
        return seq(*stmts)

    shape = t.shape[:-1] if tuples else t.shape
    ctx.checks.append(ctx.loops(shape, body, "ck"))
