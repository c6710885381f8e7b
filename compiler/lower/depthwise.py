"""Depthwise convolution (one input and one output channel per group), vectorized along output rows.

The same input layout serves MaxPool (padded with -inf instead of zeros).

Per channel, the input is first copied into a zero-padded scratch, split by stride phase: element
(*phase, *sub) holds padded input position sub * stride + phase, so kernel tap t of
output position o reads phase (t*d) % s at sub-position o + (t*d) // s, contiguous in o
whatever the stride. The kernel then has no bounds checks: per output row, every tap is one
vector fused multiply-add of an input row with a broadcast weight (one independent chain
per kernel row), and the epilogue (bias, BN, activation) runs on the same vectors. A row
is whole vectors plus one shorter vector, so nothing is left to scalar code. A stride-1 2-D
kernel computes TAP_ROWS output rows at once, taps-major: each shifted input row vector is
loaded once and fed to every output row it contributes to.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from aic.ir.loop import Allocate, Call, Expr, Let, Load, Scope, Stmt, Store, Var
from aic.ir.loop_tools import binop, depends_on, exprs_of, seq, stmts_of
from aic.ir.ops.window import Window

from .core import LowerCtx, Tensor, const, idx, linear, store
from .mathx import add
from .reduce import stack
from .rows import vector_row
from .sizes import bounds, size_prod

ROWS_PER_STEP = 2  # output rows computed together (measured: BENCHMARKS.md)
TAP_ROWS = 4  # output rows of a taps-major step (stride 1): each shifted input row loaded once for all of them
VECTORS_PER_STEP = 2  # target vectors of a row computed as one wide vector (measured: BENCHMARKS.md)
LOCAL_PLANE = 1 << 16  # floats: a phase-split plane up to this size lives on the stack, one per channel


class PhaseSplit:
    """The input copied into a `fill`-padded, phase-split scratch: plane (n, c) holds element (*phase, *sub)
    = padded input position sub * stride + phase.

    A plane of at most LOCAL_PLANE floats is a stack buffer of the channel's own iteration, written just
    before its output rows read it (so it is read back from L1/L2, and the channel loop is one parallel
    loop); a larger one is a global scratch of all planes, written by a loop of its own first."""

    def __init__(self, ctx: LowerCtx, x: Tensor, window: Window, kernel: list[int], outs: list[int],
                 fill: float = 0.0, local: bool = True, slack: int = 0) -> None:
        spatial = list(x.shape[2:])
        self.ctx, self.x, self.fill = ctx, x, fill
        self.strides, self.dils = list(window.strides), list(window.dilations)
        self.begins = [window.pad_amounts(i, d)[0] for i, d in enumerate(spatial)]
        subs = [-(-(s * (o - 1) + d * (k - 1) + 1) // s) for o, k, s, d in zip(outs, kernel, self.strides, self.dils)]
        self.plane = (*self.strides, *subs)
        size = int(np.prod(self.plane))
        self.local = local and size <= LOCAL_PLANE
        self.size = size * size_prod(x.shape[:2])
        self.slack = slack  # zeros after the last plane (global scratch only), for vector reads past its end
        # a local plane has a vector of slack: rows computed past their end (output_rows) read into it
        self.buf = stack(ctx, x.dtype, size + ctx.lanes, "xs") if self.local else ctx.scratch(
            x.dtype, self.size + slack)
        # each channel's rows run in order on one thread (its own iteration), so a row may spill into the next
        self.row_spill = self.local and bounds(size_prod(x.shape[:2]))[0] > 1  # another plane follows

    def _at(self, n: Expr, c: Expr, plane_index: list[Expr]) -> Expr:
        if self.local:
            return linear(plane_index, self.plane)
        return linear([n, c, *plane_index], (*self.x.shape[:2], *self.plane))

    def read(self, n: Expr, c: Expr, o: list[Expr], taps: list[int] | list[Expr]) -> Expr:
        """The (vector-friendly) load of kernel tap `taps` (numbers or loop indices) of output position `o`."""
        at = [binop("mul", t if isinstance(t, Expr) else idx(t), idx(d)) for t, d in zip(taps, self.dils)]
        phase = [binop("mod", a, idx(s)) for a, s in zip(at, self.strides)]
        sub = [binop("add", oi, binop("div", a, idx(s))) for oi, a, s in zip(o, at, self.strides)]
        return Load(self.buf, self._at(n, c, [*phase, *sub]))

    def prepare(self) -> Stmt:
        """Write every plane (a global scratch, read by all output channels) and the slack."""
        assert not self.local
        zero = const(self.fill, self.x.dtype)
        tail = self.ctx.loop(self.slack, lambda i: store(self.buf, binop("add", i, idx(self.size)), zero), "ps")
        return seq(self.ctx.loops(self.x.shape[:2], lambda i: self.copy_plane(i[0], i[1]), "p"), tail)

    def channels(self, lead: tuple[int, ...], body: Callable[[list[Expr]], Stmt]) -> Stmt:
        """Loops over `lead` (batch, channel) running body(index) after the plane it reads is written."""
        if self.local:
            return self.ctx.loops(lead, lambda i: Allocate(self.buf, seq(self.copy_plane(i[0], i[1]), body(i))), "dc")
        return seq(self.prepare(), self.ctx.loops(lead, body, "dc"))

    def copy_plane(self, n: Expr, c: Expr) -> Stmt:
        """Plane (n, c): per phase and axis, sub-positions split into a `fill` head, a copied middle and a
        `fill` tail, so the copy has no bounds checks (with unit strides it reads whole input rows: vectors)."""
        ctx, x = self.ctx, self.x
        strides, begins = self.strides, self.begins
        rank = len(strides)
        spatial = list(x.shape[2:])
        subs = list(self.plane[rank:])
        zero = const(self.fill, x.dtype)

        def one_phase(phase: tuple[int, ...]) -> Stmt:
            ranges = []
            for p, s, b, d, q in zip(phase, strides, begins, spatial, subs):
                lo = min(q, max(0, -(-(b - p) // s)))
                ranges.append((lo, max(lo, min(q, (d - 1 + b - p) // s + 1))))

            def at(sub: list[Expr]) -> Expr:
                return self._at(n, c, [*map(idx, phase), *sub])

            def level(a: int, sub: list[Expr]) -> Stmt:
                if a == rank:
                    coords = [binop("sub", binop("add", binop("mul", q, idx(s)), idx(p)), idx(b))
                              for q, p, s, b in zip(sub, phase, strides, begins)]
                    return store(self.buf, at(sub), x.at([n, c, *coords]))
                lo, hi = ranges[a]
                rest = subs[a + 1:]

                def zeros(start: int, stop: int) -> Stmt:
                    return ctx.loops((stop - start, *rest), lambda i: store(
                        self.buf, at([*sub, binop("add", i[0], idx(start)), *i[1:]]), zero), "pz")

                middle = ctx.loop(hi - lo, lambda q: level(a + 1, [*sub, binop("add", q, idx(lo))]), "pq")
                return seq(zeros(0, lo) if lo else None, middle, zeros(hi, subs[a]) if hi < subs[a] else None)

            return level(0, [])

        return seq(*(one_phase(ph) for ph in itertools.product(*(range(s) for s in strides))))


Rows = Callable[[list[Expr], Expr, int, Expr], Stmt]  # (lead, first output row, row count, column): a step


def output_rows(ctx: LowerCtx, outs: list[int], lead: list[Expr],
                row: Callable[[list[Expr], list[Expr]], Stmt], spill: bool = False, step: Rows | None = None) -> Stmt:
    """The output rows of one (batch, channel) `lead`: loops over the output axes but the last, each row
    vector_row over the last; row(lead, output position). `step` computes TAP_ROWS rows of a 2-D map at once
    instead, where rows run in steps; its rows do not spill (a step's rows interleave column by column, so a
    spilled lane could land after the next row's own store; measured as fast as spilling at 14 and 28 wide).

    With `spill` (the rows of one plane run in order on one thread), a 2-D map whose rows end in an
    odd-width vector (a tail of 3, 5, 6 or 7 lanes: 7, 14, 13 wide) computes every row but the last as
    whole vectors (VECTORS_PER_STEP wide where they fit, as in `_rows_in_steps`): the extra lanes are
    written into the start of the next row, which that row then overwrites. LLVM assembles odd-width
    vectors from pieces; they are left to the last row."""
    width, lanes = outs[-1], ctx.lanes
    tail, whole = width % lanes, -(-width // lanes) * lanes

    def unspilled() -> Stmt:
        if len(outs) == 2 and outs[0] >= 2 * ROWS_PER_STEP and lanes > 1:
            return _rows_in_steps(ctx, outs, lead, row, step)
        return ctx.loops(outs[:-1], lambda o: vector_row(ctx, width, lambda v: row(lead, [*o, v])), "oh")

    if (not spill or step or len(outs) != 2 or tail & (tail - 1) == 0 or outs[0] < 2  # a 1, 2 or 4-lane tail
            or whole > 2 * width):  # is native; the extra lanes would reach past the next row (16 lanes, rows of 5-7)
        return unspilled()
    columns: list[Expr] = []

    def spilled(v: Expr, h: Expr) -> Stmt:
        columns.append(v)
        return row(lead, [h, v])

    wide = VECTORS_PER_STEP * lanes if whole % (VECTORS_PER_STEP * lanes) == 0 else 0  # (rows of 14: one 16-lane)
    body = ctx.loop(outs[0] - 1, lambda h: vector_row(ctx, whole, lambda v: spilled(v, h), wide), "oh")
    if not _spill_safe(body, columns):
        return unspilled()
    return seq(body, vector_row(ctx, width, lambda v: row(lead, [idx(outs[0] - 1), v])))


def _rows_in_steps(ctx: LowerCtx, outs: list[int], lead: list[Expr],
                   row: Callable[[list[Expr], list[Expr]], Stmt], step: Rows | None = None) -> Stmt:
    """Output rows ROWS_PER_STEP at a time, their vectors side by side: neighbouring rows share all but
    one of their input rows (loaded once), and their independent epilogues (a SiLU is a long dependent
    chain) overlap. Each row's vector is VECTORS_PER_STEP target vectors wide: LLVM emits the halves of
    every operation next to each other, so the chains also interleave in program order (the two rows'
    chains come one after the other). `step`: TAP_ROWS rows at a time, computed by `step`."""
    per = TAP_ROWS if step else ROWS_PER_STEP
    steps, rest = divmod(outs[0], per)

    def rows(first: Expr, count: int) -> Stmt:
        if step:
            return vector_row(ctx, outs[1], lambda v: step(lead, first, count, v), VECTORS_PER_STEP * ctx.lanes)
        return vector_row(ctx, outs[1], lambda v: seq(*(row(lead, [binop("add", first, idx(k)), v])
                                                        for k in range(count))), VECTORS_PER_STEP * ctx.lanes)

    body = ctx.loop(steps, lambda h: rows(binop("mul", h, idx(per)), per), "oh")
    return seq(body, rows(idx(steps * per), rest) if rest else None)


def _spill_safe(body: Stmt, columns: list[Expr]) -> bool:
    """Whether every load of the (fused) rows that varies along the row reads at a position the rows also
    store to (a same-shape operand such as a residual): a tensor broadcast along rows ([.., 1, W]) would
    be read past its end by the spilled lanes."""
    stored, loads = set(), []
    for st in stmts_of(body):
        values = [st.index, st.value] if isinstance(st, Store) else [st.value] if isinstance(st, Let) else []
        if isinstance(st, Store):
            stored.add(st.index)
        loads += [e for v in values for e in exprs_of(v) if isinstance(e, Load)]
    return all(ld.index in stored or ld.buffer.scope is Scope.STACK
               or not any(isinstance(c, Var) and depends_on(ld.index, c) for c in columns) for ld in loads)


def depthwise(ctx: LowerCtx, x: Tensor, weights: np.ndarray, window: Window, outs: list[int],
              finish: Callable[[list[Expr], Expr], Stmt]) -> Stmt:
    """Depthwise conv of float32 `x` [N, C, *spatial] with constant `weights` [C, 1, *kernel]."""
    n_batch, channels = x.shape[:2]
    kernel = list(weights.shape[2:])
    split = PhaseSplit(ctx, x, window, kernel, outs)
    w = ctx.weight(np.ascontiguousarray(weights.reshape(channels, -1), np.float32), "w")

    def row(i: list[Expr], o: list[Expr]) -> Stmt:
        n, c = i
        chains: list[Expr] = []
        for head in itertools.product(*(range(k) for k in kernel[:-1])):
            acc: Expr | None = None
            for t_last in range(kernel[-1]):
                taps = [*head, t_last]
                xv = split.read(n, c, o, taps)
                wv = w.at([c, idx(int(np.ravel_multi_index(taps, kernel)))])
                acc = binop("mul", xv, wv) if acc is None else Call("fma", (xv, wv, acc))
            assert acc is not None
            chains.append(acc)
        total = chains[0]
        for ch in chains[1:]:
            total = add(total, ch)
        return finish([n, c, *o], total)

    def taps_major(i: list[Expr], first: Expr, count: int, v: Expr) -> Stmt:
        """`count` output rows from `first`: each input row's shifted vector is loaded once and multiplied into
        every output row it feeds (up to `count`), the rows' sums accumulated tap by tap. A row's 49 taps as
        independent expressions reloaded their inputs per row (1.7-1.8 loads per FMA, most split across lines)."""
        n, c = i
        height, width = kernel
        sums: list[Expr | None] = [None] * count
        for t in range(width):
            for k in range(count + height - 1):
                xv = ctx.let(split.read(n, c, [binop("add", first, idx(k)), v], [0, t]), "x")
                for r in range(max(0, k - height + 1), min(count, k + 1)):
                    wv = w.at([c, idx((k - r) * width + t)])
                    sums[r] = ctx.let(binop("mul", xv, wv) if sums[r] is None else Call("fma", (xv, wv, sums[r])), "s")
        return seq(*(finish([n, c, binop("add", first, idx(r)), v], total) for r, total in enumerate(sums)))

    unit = len(kernel) == 2 and all(s == 1 for s in window.strides) and all(d == 1 for d in window.dilations)
    return split.channels((n_batch, channels), lambda i: output_rows(ctx, outs, i, row, split.row_spill,
                                                                     taps_major if unit else None))
