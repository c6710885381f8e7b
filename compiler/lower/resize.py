"""Lowering of Resize: per-axis tap tables computed at compile time.

The op table's sampling functions give, for every resized axis, which input positions
each output position reads and with what weight (nearest: one tap; linear, cubic and
antialias: a few). The tables become small weights; the kernel sums the products of
the taps over the resized axes. Scales and sizes must be constants (shapes are static).
As a kernel of its own (`_resize_root`), an upsampling of the last axis by an integer factor
writes the interior of each row as whole vectors of its phases interleaved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Bin, Cast, Expr, Stmt
from aic.ir.loop_tools import binop, select, seq
from aic.ir.loop_vectorize import MAX_INTERLEAVE
from aic.ir.ops.resize import plan
from aic.ir.ops.resize_weights import (
    antialias_weights,
    cubic_weights,
    linear_weights,
    nearest_indices,
    original_coords,
)

from .core import ComputeTensor, LowerCtx, Tensor, const, convert, idx, node_error
from .mathx import add, mul
from .sizes import Sym, SymbolicSizeError, shape_of, size_prod
from .table import Emit, compute


def _const_input(node: Node, i: int) -> np.ndarray | None:
    v = node.inputs[i] if i < len(node.inputs) else None
    if v is None:
        return None
    if v.const is None:
        if v.type.is_static and size_prod(shape_of(v.type)) == 0:
            return None
        raise node_error(node, f"input {i} (roi, scales or sizes) must be a constant")
    return None if v.const.size == 0 else np.asarray(v.const)


def _taps(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense (out x in) weights -> per-row (index, weight) tables of the nonzero columns."""
    width = max(1, int((matrix != 0).sum(axis=1).max(initial=1)))
    index = np.zeros((matrix.shape[0], width), np.int64)
    weight = np.zeros((matrix.shape[0], width), np.float32)
    for r, row in enumerate(matrix):
        cols = np.nonzero(row)[0]
        index[r, : len(cols)] = cols
        weight[r, : len(cols)] = row[cols]
    return index, weight


@dataclass(frozen=True)
class _Axis:
    """One resized axis: per output position, the input positions it reads and their weights (None: nearest, one
    tap of weight 1), and whether it falls outside the crop box (tf_crop_and_resize)."""

    index: np.ndarray  # [out, taps] int64
    weight: np.ndarray | None  # [out, taps] float32
    outside: np.ndarray | None  # [out] bool


def _axes(node: Node, x: Tensor) -> dict[int, _Axis]:
    """The resized axes of the node's input `x` (axes whose size and scale stay 1 are left out)."""
    crop = node.attrs.get("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize"
    roi = _const_input(node, 1) if crop else None  # only tf_crop_and_resize reads the roi
    scales, sizes = (_const_input(node, i) for i in (2, 3))
    axes = [a % x.rank for a in node.attrs.get("axes") or []] or list(range(x.rank))
    scales_, sizes_ = (None if v is None else v.tolist() for v in (scales, sizes))
    kept = [i for i, a in enumerate(axes) if not isinstance(x.shape[a], Sym)]  # run-time dims must keep their size
    if len(kept) < len(axes):
        if crop or sizes_ is not None or any(scales_[i] != 1 for i in range(len(axes)) if i not in kept):  # type: ignore[index]
            raise SymbolicSizeError("resizing a dim known only at run time")
        axes, scales_ = [axes[i] for i in kept], [scales_[i] for i in kept]  # type: ignore[index]
    geometry = plan(x.shape, axes, scales_, sizes_, node.attrs.get("keep_aspect_ratio_policy", "stretch"))
    mode = node.attrs.get("mode", "nearest")
    coordinate_mode = node.attrs.get("coordinate_transformation_mode", "half_pixel")
    a, exclude = node.attrs.get("cubic_coeff_a", -0.75), node.attrs.get("exclude_outside", 0)
    out: dict[int, _Axis] = {}
    for i, axis in enumerate(axes):
        length, (n_out, scale) = x.shape[axis], geometry[axis]
        box = (0.0, 1.0) if roi is None else (float(roi[i]), float(roi[i + len(axes)]))
        if n_out == length and scale == 1 and (not crop or box == (0.0, 1.0)):
            continue
        coords = original_coords(coordinate_mode, n_out, length, scale, box)
        outside = (coords < 0) | (coords > length - 1) if crop else None
        if mode == "nearest":
            index = nearest_indices(coords, node.attrs.get("nearest_mode", "round_prefer_floor"), length)
            out[axis] = _Axis(index.astype(np.int64).reshape(-1, 1), None, outside)
            continue
        if node.attrs.get("antialias", 0):
            matrix = antialias_weights(coords, length, scale, mode, a, exclude)
        elif mode == "linear":
            matrix = linear_weights(coords, length)
        else:
            matrix = cubic_weights(coords, length, a, exclude)
        out[axis] = _Axis(*_taps(matrix), outside)
    return out


def _periodic(axis: _Axis, length: int, lanes: int) -> tuple[int, int, list[dict[int, float]]] | None:
    """For an axis upsampled by an integer factor s (<= MAX_INTERLEAVE): (j0, j1, taps) when every output s*j + p
    with j0 <= j < j1 reads inputs j + d with weights taps[p][d] (the interior, away from clamped edges), at least
    `lanes` of j; else None."""
    n_out = axis.index.shape[0]
    s = n_out // length
    if n_out != s * length or not 2 <= s <= MAX_INTERLEAVE or axis.outside is not None:
        return None
    weight = np.ones(axis.index.shape, np.float32) if axis.weight is None else axis.weight

    def taps(o: int) -> dict[int, float]:
        return {int(i) - o // s: float(w) for i, w in zip(axis.index[o], weight[o]) if w != 0}

    middle = length // 2
    pattern = [taps(s * middle + p) for p in range(s)]
    same = [all(taps(s * j + p) == pattern[p] for p in range(s)) for j in range(length)]
    j0 = j1 = middle
    while j0 > 0 and same[j0 - 1]:
        j0 -= 1
    while j1 < length and same[j1]:
        j1 += 1
    return (j0, j1, pattern) if j1 - j0 >= lanes else None


Taps = list[tuple[list[Expr], Expr | None]]  # (input index, weight or None for 1) per combination of taps


class _Sampler:
    """Reads the output of a Resize from its input `x`: `taps(index)` binds, at the caller's scope, which input
    elements an output element reads and their weights (over every resized axis, or all but the last);
    `value(index)` is the output element."""

    def __init__(self, ctx: LowerCtx, node: Node, x: Tensor, axes: dict[int, _Axis]) -> None:
        self.ctx, self.x = ctx, x
        self.out = node.outputs[0].type
        self.mode = node.attrs.get("mode", "nearest")
        self.dt = DType.float64 if x.dtype == DType.float64 else DType.float32
        self.extrapolation = node.attrs.get("extrapolation_value", 0.0)
        self.tables = {axis: (ctx.weight(a.index, "ix"), None if a.weight is None else ctx.weight(a.weight, "wt"),
                              None if a.outside is None else ctx.weight(a.outside.astype(np.bool_), "out"))
                       for axis, a in axes.items()}

    def taps(self, index: list[Expr], but_last: bool = False) -> Taps:
        combos: Taps = [(list(index), None)]
        for axis in sorted(self.tables):
            if but_last and axis == self.x.rank - 1:
                continue
            table, weights, _ = self.tables[axis]
            step: Taps = []
            for t in range(table.shape[1]):
                j = self.ctx.let(table.at([index[axis], idx(t)]), "src")
                wt = None if weights is None else self.ctx.let(Cast(self.dt, weights.at([index[axis], idx(t)])), "wt")
                step += [([j if a == axis else e for a, e in enumerate(src)], wt if w is None or wt is None
                          else mul(w, wt)) for src, w in combos]
            combos = step
        return combos

    def combine(self, taps: Taps, last: Expr | None = None) -> Expr:
        """The sum of the taps' weighted input elements (the last axis read at `last` when given)."""
        total: Expr | None = None
        for src, w in taps:
            v = self.x.at(src if last is None else [*src[:-1], last])
            v = v if v.dtype == self.dt else Cast(self.dt, v)
            term = v if w is None else mul(w, v)
            total = term if total is None else add(total, term)
        assert total is not None
        return total

    def value(self, index: list[Expr]) -> Expr:
        total = self.combine(self.taps(index))
        if self.x.dtype.is_int and self.mode != "nearest":
            info, dt = np.iinfo(self.x.dtype.numpy), self.dt
            total = select(Bin("lt", total, const(info.min, dt)), const(info.min, dt),
                           select(Bin("gt", total, const(info.max, dt)), const(info.max, dt), total))
            total = Cast(self.x.dtype, total)
        for axis, (_, _, outside) in self.tables.items():
            if outside is not None:
                total = select(outside.at([index[axis]]), const(self.extrapolation, total.dtype), total)
        return convert(total, self.out.dtype)


def _resize_root(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    """As a kernel of its own, a float32 Resize that upsamples its last axis by an integer factor s writes each
    output row's interior as s phases per input position, j + d read with constant weights: s stores of stride s,
    which the vectorizer joins into one interleaved store (ir/loop_vectorize.py); the edges go element by element.
    (The element-wise form reads each input through a table of positions: a gather per element, 4 GB/s.)"""
    x = ins[0]
    assert x is not None
    shape = shape_of(node.outputs[0].type)
    axes = _axes(node, x)
    sampler = _Sampler(ctx, node, x, axes)
    last = x.rank - 1
    periodic = _periodic(axes[last], x.shape[last], ctx.lanes) if last in axes and x.dtype == DType.float32 \
        and ctx.lanes > 1 and not any(isinstance(d, Sym) for d in shape) else None
    if periodic is None:
        return ctx.loops(shape, lambda i: emit(0, i, sampler.value(i)))
    j0, j1, pattern = periodic
    s = len(pattern)

    def row(lead: list[Expr]) -> Stmt:
        def edge(first: int, count: int) -> Stmt:
            def element(o: Expr) -> Stmt:
                index = [*lead, binop("add", o, idx(first))]
                return emit(0, index, sampler.value(index))

            return ctx.loop(count, element, "re")

        rows = sampler.taps([*lead, idx(0)], but_last=True)  # bound once per row

        def phases(j: Expr) -> Stmt:
            at = binop("add", j, idx(j0))
            reads = {d: ctx.let(sampler.combine(rows, binop("add", at, idx(d))), "col")
                     for d in sorted({d for taps in pattern for d in taps})}
            stores = []
            for p, taps in enumerate(pattern):
                total: Expr | None = None
                for d, w in sorted(taps.items()):
                    term = reads[d] if w == 1 else mul(const(w, DType.float32), reads[d])
                    total = term if total is None else add(total, term)
                assert total is not None
                stores.append(emit(0, [*lead, binop("add", binop("mul", at, idx(s)), idx(p))], total))
            return seq(*stores)

        return seq(edge(0, s * j0), ctx.loop(j1 - j0, phases, "rx"), edge(s * j1, shape[last] - s * j1))

    return ctx.loops(shape[:-1], row, "ro")


@compute("Resize", root=_resize_root)
def _resize(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x = ins[0]
    assert x is not None
    sampler = _Sampler(ctx, node, x, _axes(node, x))
    return [ComputeTensor(shape_of(node.outputs[0].type), node.outputs[0].type.dtype, sampler.value)]
