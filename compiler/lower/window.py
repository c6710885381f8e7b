"""Sliding windows without bounds checks in the interior.

Along each spatial axis, output positions split into a head whose windows start in the
padding, an interior whose windows lie inside the input, and a tail. The loop nest
visits each part separately, so the interior (almost all the work) reads the input with
plain affine indices, which vectorize, and only the thin borders check bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aic.ir.loop import Bin, Expr, If, Stmt
from aic.ir.loop_tools import binop, seq
from aic.ir.ops.window import Window

from .core import BufferTensor, LowerCtx, Tensor, clamp, const, idx, linear, store
from .sizes import size_prod


def interior(window: Window, sizes: Sequence[int], outs: Sequence[int]) -> list[tuple[int, int]]:
    """Per spatial axis, the output range [lo, hi) whose windows lie inside the input."""
    ranges = []
    for i, (size, out) in enumerate(zip(sizes, outs)):
        begin = window.pad_amounts(i, size)[0]
        s, span = window.strides[i], window.spans[i]
        lo = min(-(-begin // s), out)
        hi = (size - span + begin) // s + 1
        ranges.append((lo, max(lo, min(hi, out))))
    return ranges


def window_loops(
    ctx: LowerCtx,
    lead: Sequence[int],
    outs: Sequence[int],
    ranges: Sequence[tuple[int, int]],
    body: Callable[[list[Expr], bool], Stmt],
) -> Stmt:
    """Loops over the leading axes, then the spatial output axes in parts; `body(index, inside)`."""

    def level(d: int, index: list[Expr], inside: bool) -> Stmt:
        if d == len(outs):
            return body(index, inside)
        lo, hi = ranges[d] if inside else (0, 0)
        parts = [(0, lo, False), (lo, hi, True), (hi, outs[d], False)] if inside else [(0, outs[d], False)]
        nests = []
        for start, stop, keep in parts:
            if stop > start:
                nests.append(
                    ctx.loop(
                        stop - start, lambda v, s=start, k=keep: level(d + 1, [*index, binop("add", v, idx(s))], k), "o"
                    )
                )
        return seq(*nests)

    return ctx.loops(lead, lambda index: level(0, index, True), "i")


def tap_coords(window: Window, sizes: Sequence[int], out: Sequence[Expr], taps: Sequence[Expr]) -> list[Expr]:
    """Input coordinates (possibly outside the input) of kernel tap `taps` for output position `out`."""
    coords = []
    for i, (o, t, size) in enumerate(zip(out, taps, sizes)):
        begin = window.pad_amounts(i, size)[0]
        at = binop("add", binop("mul", o, idx(window.strides[i])), binop("mul", t, idx(window.dilations[i])))
        coords.append(binop("sub", at, idx(begin)))
    return coords


def inside_input(coords: Sequence[Expr], sizes: Sequence[int]) -> Expr | None:
    """Whether every coordinate lies in its axis (None: nothing to check)."""
    ok: Expr | None = None
    for c, size in zip(coords, sizes):
        cond = Bin("and", Bin("ge", c, idx(0)), Bin("lt", c, idx(size)))
        ok = cond if ok is None else Bin("and", ok, cond)
    return ok


def clamped(coords: Sequence[Expr], sizes: Sequence[int]) -> list[Expr]:
    return [clamp(c, 0, size - 1) for c, size in zip(coords, sizes)]


def padded_input(
    ctx: LowerCtx, x: Tensor, begins: list[int], extents: list[int], slack: int = 0
) -> tuple[Tensor, Stmt | None]:
    """x with its spatial axes zero padded (`begins` before, total sizes `extents`), in a scratch buffer
    with `slack` zeros after the end (so vector reads may run past the last row).

    One pass over the padded rows: a row inside the input is its left zeros, the copied input row and its
    right zeros; a row in the padding is all zeros. Every element is written once, and the parallel loop
    over channels (and rows) needs no barrier after a separate zero fill."""
    spatial = x.shape[2:]
    if list(spatial) == extents and not slack and isinstance(x, BufferTensor):
        return x, None
    shape = (*x.shape[:2], *extents)
    buf = ctx.scratch(x.dtype, size_prod(shape) + slack)
    zero = const(0, x.dtype)
    outer = list(zip(begins[:-1], spatial[:-1]))
    begin, width, extent = begins[-1], spatial[-1], extents[-1]

    def row(index: list[Expr]) -> Stmt:
        start = linear([*index, idx(0)], shape)

        def at(j: Expr, offset: int) -> Expr:
            return binop("add", start, binop("add", j, idx(offset)))

        def zeros(lo: int, hi: int) -> Stmt:
            return ctx.loop(hi - lo, lambda j: store(buf, at(j, lo), zero), "z")

        source = [*index[:2], *(binop("sub", i, idx(b)) for i, (b, _) in zip(index[2:], outer))]
        copy = ctx.loop(width, lambda j: store(buf, at(j, begin), x.at([*source, j])), "p")
        inside: Expr | None = None
        for i, (b, size) in zip(index[2:], outer):
            cond = Bin("and", Bin("ge", i, idx(b)), Bin("lt", i, idx(b + size)))
            inside = cond if inside is None else Bin("and", inside, cond)
        filled = seq(zeros(0, begin), copy, zeros(begin + width, extent))
        return filled if inside is None else If(inside, filled, zeros(0, extent))

    rows = ctx.loops(shape[:-1], row, "p")
    end = idx(size_prod(shape))
    tail = ctx.loop(slack, lambda j: store(buf, binop("add", end, j), zero), "z") if slack else None
    return BufferTensor(shape, x.dtype, lambda: buf), seq(rows, tail)
