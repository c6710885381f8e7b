"""Lowering of Resize: per-axis tap tables computed at compile time.

The op table's sampling functions give, for every resized axis, which input positions
each output position reads and with what weight (nearest: one tap; linear, cubic and
antialias: a few). The tables become small weights; the kernel sums the products of
the taps over the resized axes. Scales and sizes must be constants (shapes are static).
"""

from __future__ import annotations

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Bin, Cast, Expr
from aic.ir.loop_tools import select
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
from .table import compute


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


@compute("Resize")
def _resize(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x = ins[0]
    assert x is not None
    out = node.outputs[0].type
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
    tables: dict[int, tuple[Tensor, Tensor | None, Tensor | None]] = {}
    for i, axis in enumerate(axes):
        length, (n_out, scale) = x.shape[axis], geometry[axis]
        box = (0.0, 1.0) if roi is None else (float(roi[i]), float(roi[i + len(axes)]))
        if n_out == length and scale == 1 and (not crop or box == (0.0, 1.0)):
            continue
        coords = original_coords(coordinate_mode, n_out, length, scale, box)
        outside = ctx.weight(((coords < 0) | (coords > length - 1)).astype(np.bool_), "out") if crop else None
        if mode == "nearest":
            index = nearest_indices(coords, node.attrs.get("nearest_mode", "round_prefer_floor"), length)
            tables[axis] = (ctx.weight(index.astype(np.int64).reshape(-1, 1), "ix"), None, outside)
            continue
        if node.attrs.get("antialias", 0):
            matrix = antialias_weights(coords, length, scale, mode, a, exclude)
        elif mode == "linear":
            matrix = linear_weights(coords, length)
        else:
            matrix = cubic_weights(coords, length, a, exclude)
        index, weight = _taps(matrix)
        tables[axis] = (ctx.weight(index, "ix"), ctx.weight(weight, "wt"), outside)
    dt = DType.float64 if x.dtype == DType.float64 else DType.float32
    extrapolation = node.attrs.get("extrapolation_value", 0.0)

    def at(index: list[Expr]) -> Expr:
        resized = [axis for axis in sorted(tables)]
        total: Expr | None = None

        def combos(k: int, src: list[Expr], w: Expr | None) -> None:
            nonlocal total
            if k == len(resized):
                v = x.at(src)
                v = v if v.dtype == dt else Cast(dt, v)
                term = v if w is None else mul(w, v)
                total = term if total is None else add(total, term)
                return
            axis = resized[k]
            table, weights, _ = tables[axis]
            for t in range(table.shape[1]):
                j = ctx.let(table.at([index[axis], idx(t)]), "src")
                wt = None if weights is None else ctx.let(Cast(dt, weights.at([index[axis], idx(t)])), "wt")
                combos(k + 1, [j if a2 == axis else e for a2, e in enumerate(src)], wt if w is None or wt is None
                       else mul(w, wt))

        combos(0, list(index), None)
        assert total is not None
        if x.dtype.is_int and mode != "nearest":
            info = np.iinfo(x.dtype.numpy)
            total = select(Bin("lt", total, const(info.min, dt)), const(info.min, dt),
                           select(Bin("gt", total, const(info.max, dt)), const(info.max, dt), total))
            total = Cast(x.dtype, total)
        for axis, (_, _, outside) in tables.items():
            if outside is not None:
                total = select(outside.at([index[axis]]), const(extrapolation, total.dtype), total)
        return convert(total, out.dtype)

    return [ComputeTensor(shape_of(out), out.dtype, at)]
