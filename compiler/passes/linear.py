"""Linear producers with constant weights, and folding a per-channel affine map
y*scale + shift into them. Shared by `fold_batchnorm` and `fold_affine`.

A linear unit is a Conv (output channels on axis 1), a Gemm, or a MatMul by a
2-D weight (channels on the last axis), optionally followed by an Add of a
per-channel constant (the MatMul's bias). Weights and biases must be
constants; the element type a float type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from aic.ir import Node, Value

from .rewrite import Rewriter, const_array


@dataclass
class Linear:
    node: Node  # the Conv, Gemm or MatMul
    bias_add: Node | None  # Add(MatMul, bias) when the unit is a MatMul with a bias
    out: Value  # the unit's output
    axis: int  # channel axis of `out`
    channels: int

    @property
    def has_bias_slot(self) -> bool:
        return self.node.op != "MatMul" or self.bias_add is not None


def _bias_of_add(rw: Rewriter, v: Value) -> tuple[Node, Value] | None:
    """(MatMul node, bias constant) if v = Add(MatMul(x, W), bias) and the MatMul has no other reader."""
    add = rw.producer(v, "Add")
    if add is None:
        return None
    for a, c in (add.inputs, add.inputs[::-1]):
        mm = rw.producer(a, "MatMul")
        if mm is not None and const_array(c) is not None and rw.only_reader(a) is add:
            return mm, c
    return None


def match_linear(rw: Rewriter, v: Value) -> Linear | None:
    """The linear unit producing `v`, if its weights are constants."""
    bias_add = None
    node = rw.producer(v, "Conv", "Gemm", "MatMul")
    if node is None:
        found = _bias_of_add(rw, v)
        if found is None:
            return None
        node, bias_add = found[0], v.producer
    out = node.outputs[0]
    if not out.type.dtype.is_float or any(const_array(w) is None for w in node.inputs[1:] if w is not None):
        return None
    if node.op == "MatMul" and node.inputs[1].type.rank != 2:  # type: ignore[union-attr]
        return None
    axis = 1 if node.op == "Conv" else out.type.rank - 1
    channels = out.type.shape[axis]
    if not isinstance(channels, int):
        return None
    unit = Linear(node, bias_add, v, axis, channels)
    if bias_add is not None and per_channel(const_array(_bias_input(unit)), unit) is None:  # type: ignore[arg-type]
        return None
    return unit


def _bias_input(unit: Linear) -> Value:
    assert unit.bias_add is not None
    a, b = unit.bias_add.inputs
    return b if a is unit.node.outputs[0] else a  # type: ignore[return-value]


def per_channel(c: np.ndarray | None, unit: Linear) -> np.ndarray | None:
    """`c` as a (channels,) float64 vector if it broadcasts against the unit's
    output varying only along the channel axis (and never enlarges it)."""
    if c is None:
        return None
    rank = unit.out.type.rank
    if c.ndim > rank:
        return None
    dims = (1,) * (rank - c.ndim) + c.shape
    if any(d != 1 for i, d in enumerate(dims) if i != unit.axis) or dims[unit.axis] not in (1, unit.channels):
        return None
    return np.broadcast_to(c.astype(np.float64).reshape(-1), (unit.channels,)).copy()


def fold_affine(rw: Rewriter, unit: Linear, scale: np.ndarray, shift: np.ndarray) -> Value:
    """A new linear unit computing unit.out * scale + shift (per channel)."""
    node = unit.node
    dtype = unit.out.type.dtype.numpy
    x, w = node.inputs[0], node.inputs[1]
    assert x is not None and w is not None
    if node.op == "Conv":
        w = _scaled_weight(rw, w, scale.reshape(-1, *[1] * (w.type.rank - 1)))
        bias = const_array(node.inputs[2]) if len(node.inputs) > 2 else None
        b_new = (bias.astype(np.float64) if bias is not None else 0.0) * scale + shift
        return rw.node("Conv", [x, w, rw.const(b_new.astype(dtype), "bias")], node.attrs, name=node.name)[0]
    if node.op == "Gemm":
        w = _scaled_weight(rw, w, scale[:, None] if node.attrs["transB"] else scale[None, :])
        c = const_array(node.inputs[2]) if len(node.inputs) > 2 else None
        c_new = (c.astype(np.float64) * node.attrs["beta"] if c is not None else 0.0) * scale + shift
        attrs = {**node.attrs, "beta": 1.0}
        return rw.node("Gemm", [x, w, rw.const(np.asarray(c_new, dtype), "bias")], attrs, name=node.name)[0]
    y = rw.op("MatMul", x, _scaled_weight(rw, w, scale[None, :]), name=node.name)
    if unit.bias_add is not None:
        shift = per_channel(const_array(_bias_input(unit)), unit) * scale + shift  # type: ignore[operator]
    elif not np.any(shift):
        return y
    bias = shift.reshape((-1,) + (1,) * (unit.out.type.rank - 1 - unit.axis))
    return rw.op("Add", y, rw.const(bias.astype(dtype), "bias"), name=node.name)


def _scaled_weight(rw: Rewriter, w: Value, scale: np.ndarray) -> Value:
    """The weight times a broadcasting scale (the same constant when the scale is all ones)."""
    if np.all(scale == 1):
        return w
    array = const_array(w)
    assert array is not None
    return rw.const((array.astype(np.float64) * scale).astype(array.dtype), "weight")
