"""DFT, STFT, the window functions and MelWeightMatrix as primitive ops.

A DFT along one axis is a MatMul with a real matrix acting on the (real,
imaginary) pairs: the signal axis moves last, the two parts are flattened
with it, and one [parts*N, 2*K] matrix gives real and imaginary outputs
(inverse: conjugate phases and 1/L; one-sided: the first L//2+1 bins; IRFFT:
each bin weighted by how often it appears in the Hermitian full spectrum).
The matrix is built from Range/Cos/Sin in float64 with the phase k*n reduced
modulo L; with a static length it folds to a constant at conversion. A DFT
axis given at run time selects among the possible axes (Where when they all
give one output shape, else If). Windows and the mel filter bank are likewise
written once in primitives (float64, cast to the requested type) and fold to
constants when their inputs are constants.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np
from aic.ir import DType, Graph, GraphBuilder, Value

from .converters import ConvertContext, converter
from .decompose_seq import Emit

F64 = np.float64
Last = Callable[..., Value]  # e.op, or e.out for the ONNX output


def _int_scalar(e: Emit, v: Value) -> Value:
    """A one-element integer input as an int64 scalar."""
    if v.type.numel != 1:
        raise e.ctx.error(f"expected a single integer, got {v.type}")
    return e.cast(e.op("Reshape", v, e.ints([])), np.int64)


def _float(e: Emit, v: Value) -> Value:
    return e.cast(v, F64)


# DFT ------------------------------------------------------------------------


def _dft_matrix(e: Emit, rows: Value, cols: Value, length: Value, parts: int, inverse: bool, irfft: bool) -> Value:
    """[parts*rows, out_parts*cols] float64: input positions (real rows, then
    imaginary rows) to output positions (real columns, then imaginary ones)."""
    n = e.op("Unsqueeze", e.arange(rows), e.ints([1]))
    k = e.op("Unsqueeze", e.arange(cols), e.ints([0]))
    phase = e.op("Mod", e.op("Mul", n, k), length)
    theta = e.op("Mul", _float(e, phase), e.op("Div", e.scalar(2 * math.pi, F64), _float(e, length)))
    cos, sin = e.op("Cos", theta), e.op("Sin", theta)
    if irfft:
        # bin j stands for itself and its mirror L - j, except the DC and Nyquist bins
        single = e.op("Or", e.op("Equal", n, e.scalar(0, np.int64)), e.op("Equal", e.op("Add", n, n), length))
        weight = e.op("Sub", e.scalar(2.0, F64), _float(e, single))
        blocks = [e.op("Mul", cos, weight), e.op("Neg", e.op("Mul", sin, weight))]
    else:
        sign = 1.0 if inverse else -1.0
        signed_sin = e.op("Mul", sin, e.scalar(sign, F64))
        blocks = [e.op("Concat", cos, signed_sin, axis=1)]
        if parts == 2:
            blocks.append(e.op("Concat", e.op("Neg", signed_sin), cos, axis=1))
    matrix = blocks[0] if len(blocks) == 1 else e.op("Concat", *blocks, axis=0)
    return e.op("Div", matrix, _float(e, length)) if inverse else matrix


def dft(e: Emit, x: Value, axis: int, length: Value | None, inverse: bool, onesided: bool, last: Last) -> Value:
    """The DFT of `x` ([..., parts] with parts 1 (real) or 2 (complex)) along `axis`."""
    ctx = e.ctx
    rank = x.type.rank
    parts = x.type.shape[-1]
    if parts not in (1, 2) or not 0 <= axis < rank - 1:
        raise ctx.error(f"needs [..., 1] or [..., 2] input and a signal axis, got {x.type} and axis {axis}")
    irfft = inverse and onesided
    if irfft and parts != 2:
        raise ctx.error(f"the inverse one-sided DFT needs complex input, got {x.type}")
    two, one = e.scalar(2, np.int64), e.scalar(1, np.int64)
    if length is None:
        n = e.size(x, axis)
        length = e.op("Mul", e.op("Sub", n, one), two) if irfft else n
    half = e.op("Add", e.op("Div", length, two), one) if onesided else length  # bins of a one-sided spectrum
    used, cols = (half, length) if irfft else (length, half)
    others = [i for i in range(rank - 1) if i != axis]
    xt = e.op("Transpose", x, perm=[*others, rank - 1, axis])  # [..., parts, N]
    known, have = used.const, x.type.shape[axis]
    if known is None or not isinstance(have, int) or have > int(known):
        xt = e.op("Slice", xt, e.ints([0]), e.op("Reshape", used, e.ints([1])), e.ints([-1]))
    matrix = _dft_matrix(e, e.size(xt, -1), cols, length, parts, inverse, irfft)
    flat = e.op("Reshape", xt, e.ints([0] * (rank - 2) + [-1]))
    y = e.op("MatMul", flat, e.cast(matrix, x.type.dtype.numpy))
    y = e.op("Reshape", y, e.ints([0] * (rank - 2) + [1 if irfft else 2, -1]))
    order = [*others, rank - 1, axis]  # the original dim each position of y holds
    return last("Transpose", y, perm=[order.index(d) for d in range(rank)])


def _subgraph(ctx: ConvertContext, build: Callable[[Emit], Value], hint: str) -> Graph:
    """A graph of no inputs (reading enclosing values) holding `build`'s ops."""
    sub = GraphBuilder(ctx.names.invent(f"{ctx.name}_{hint}"), ctx.builder.opset, taken=ctx.names.taken)
    value = build(Emit(replace(ctx, builder=sub)))
    return sub.build([value])


def _runtime_axis(
    e: Emit, axis: Value, rank: int, same_shape: bool, build: Callable[[Emit, int, Last], Value]
) -> Value:
    """`build` for the axis given at run time. When every axis gives the same
    output shape, all are computed and Where picks one; else If chooses."""
    ctx = e.ctx
    axis = e.op("Reshape", axis, e.ints([]))
    candidates = list(range(rank - 1))
    conds = [
        e.op("Or", e.op("Equal", axis, e.scalar(a, np.int64)), e.op("Equal", axis, e.scalar(a - rank, np.int64)))
        for a in candidates
    ]
    if same_shape:
        results = [build(e, a, e.op) for a in candidates]
        chosen = results[-1]
        for i in range(len(candidates) - 2, -1, -1):
            chosen = (e.op if i else partial(e.out, 0))("Where", conds[i], results[i], chosen)
        return chosen

    def pick(i: int, be: Emit, last: Last) -> Value:
        if i == len(candidates) - 1:
            return build(be, candidates[i], last)
        then = _subgraph(ctx, lambda b: build(b, candidates[i], b.op), f"axis{candidates[i]}")
        other = _subgraph(ctx, lambda b: pick(i + 1, b, b.op), f"axis_after{candidates[i]}")
        return last("If", conds[i], then_branch=then, else_branch=other)

    return pick(0, e, partial(e.out, 0))


@converter("DFT", 17)
def dft_op(ctx: ConvertContext) -> list[Value]:
    """DFT-17 takes the axis as an attribute (default 1), DFT-20 as an input (default -2)."""
    e = Emit(ctx)
    x, length = ctx.inputs[0], ctx.input(1)
    rank = x.type.rank
    length = _int_scalar(e, length) if length is not None else None
    inverse, onesided = bool(ctx.attrs.get("inverse", 0)), bool(ctx.attrs.get("onesided", 0))

    def build(be: Emit, axis: int, last: Last) -> Value:
        return dft(be, x, axis, length, inverse, onesided, last)

    if ctx.opset < 20:
        axis = ctx.attrs.get("axis", 1)
    elif ctx.input(2) is None:
        axis = -2
    elif ctx.input(2).const is not None:
        axis = int(ctx.input(2).const.reshape(-1)[0])
    else:
        same_shape = length is None and not onesided  # the output is the input's shape with 2 parts
        return [_runtime_axis(e, ctx.input(2), rank, same_shape, build)]
    if not -rank <= axis < rank - 1 or axis == -1:
        raise ctx.error(f"axis {axis} is out of range for {x.type} (the last dim holds the complex parts)")
    return [build(e, axis % rank, partial(e.out, 0))]


@converter("STFT", 17)
def stft(ctx: ConvertContext) -> list[Value]:
    """Frames [B, F, L] gathered at multiples of frame_step, times the window,
    then a DFT along the frame (one-sided by default)."""
    e = Emit(ctx)
    signal, step, window, frame_length = ctx.inputs[0], ctx.inputs[1], ctx.input(2), ctx.input(3)
    if signal.type.rank != 3 or signal.type.shape[-1] not in (1, 2):
        raise ctx.error(f"the signal must be [batch, length, 1 or 2], got {signal.type}")
    if frame_length is not None:
        length = _int_scalar(e, frame_length)
    else:
        length = e.size(window if window is not None else signal, 0 if window is not None else 1)
    step = _int_scalar(e, step)
    frames = e.op("Add", e.op("Div", e.op("Sub", e.size(signal, 1), length), step), e.scalar(1, np.int64))
    starts = e.op("Unsqueeze", e.op("Mul", e.arange(frames), step), e.ints([1]))
    indices = e.op("Add", starts, e.op("Unsqueeze", e.arange(length), e.ints([0])))
    x = e.op("Gather", signal, indices, axis=1)  # [B, F, L, parts]
    if window is not None:
        x = e.op("Mul", x, e.op("Reshape", window, e.ints([-1, 1])))
    onesided = bool(ctx.attrs.get("onesided", 1))
    return [dft(e, x, 2, length, False, onesided, partial(e.out, 0))]


# Windows --------------------------------------------------------------------

# a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N)
_WINDOWS = {
    "HannWindow": (0.5, 0.5, 0.0),
    "HammingWindow": (25 / 46, 1 - 25 / 46, 0.0),
    "BlackmanWindow": (0.42, 0.5, 0.08),
}


def window(ctx: ConvertContext) -> list[Value]:
    """A generalized cosine window of `size` points; periodic: N = size, else size - 1."""
    e = Emit(ctx)
    a0, a1, a2 = _WINDOWS[ctx.op_type]
    size = _int_scalar(e, ctx.inputs[0])
    n = e.arange(size, F64)
    period = _float(e, size)
    if not ctx.attrs.get("periodic", 1):
        period = e.op("Sub", period, e.scalar(1.0, F64))

    def cosine(cycles: int, amplitude: float) -> Value:
        """amplitude * cos(cycles * 2 pi n / N)"""
        angle = e.op("Div", e.op("Mul", n, e.scalar(cycles * 2 * math.pi, F64)), period)
        return e.op("Mul", e.op("Cos", angle), e.scalar(amplitude, F64))

    w = e.op("Sub", e.scalar(a0, F64), cosine(1, a1))
    if a2:
        w = e.op("Add", w, cosine(2, a2))
    return [e.out(0, "Cast", w, to=ctx.attrs.get("output_datatype", DType.float32.onnx))]


for _op in _WINDOWS:
    converter(_op, 17)(window)


# MelWeightMatrix ------------------------------------------------------------


def _mel(e: Emit, hertz: Value) -> Value:
    """2595 log10(1 + f / 700)."""
    ratio = e.op("Add", e.scalar(1.0, F64), e.op("Div", hertz, e.scalar(700.0, F64)))
    return e.op("Mul", e.op("Log", ratio), e.scalar(2595 / math.log(10), F64))


@converter("MelWeightMatrix", 17)
def mel_weight_matrix(ctx: ConvertContext) -> list[Value]:
    """[dft_length // 2 + 1, num_mel_bins] triangles: band i rises from bin f[i]
    to f[i+1] and falls to f[i+2], f being num_mel_bins + 2 points equally spaced
    in mel between the edges, mapped to spectrogram bins."""
    e = Emit(ctx)
    bands, dft_length, rate = (_int_scalar(e, v) for v in ctx.inputs[:3])
    low, high = (_float(e, e.op("Reshape", v, e.ints([]))) for v in ctx.inputs[3:5])
    points = e.op("Add", bands, e.scalar(2, np.int64))
    low_mel = _mel(e, low)
    step = e.op("Div", e.op("Sub", _mel(e, high), low_mel), _float(e, points))
    mel = e.op("Add", e.op("Mul", e.arange(points, F64), step), low_mel)
    one = e.scalar(1.0, F64)
    growth = e.op("Exp", e.op("Mul", mel, e.scalar(math.log(10) / 2595, F64)))
    hertz = e.op("Mul", e.op("Sub", growth, one), e.scalar(700.0, F64))
    scaled = e.op("Mul", _float(e, e.op("Add", dft_length, e.scalar(1, np.int64))), hertz)
    edges = e.op("Floor", e.op("Div", scaled, _float(e, rate)))  # float64, integral

    def edge(offset: int) -> Value:
        end = e.op("Reshape", e.op("Add", bands, e.scalar(offset, np.int64)), e.ints([1]))
        return e.op("Unsqueeze", e.op("Slice", edges, e.ints([offset]), end), e.ints([0]))

    left, center, right = edge(0), edge(1), edge(2)
    bins = e.op("Add", e.op("Div", dft_length, e.scalar(2, np.int64)), e.scalar(1, np.int64))
    j = e.op("Unsqueeze", e.arange(bins, F64), e.ints([1]))
    rise_width = e.op("Sub", center, left)
    rise = e.op("Div", e.op("Sub", j, left), e.op("Max", rise_width, one))
    rise = e.op("Where", e.op("Greater", rise_width, e.scalar(0.0, F64)), rise, one)
    fall = e.op("Div", e.op("Sub", right, j), e.op("Max", e.op("Sub", right, center), one))
    in_rise = e.op("And", e.op("LessOrEqual", left, j), e.op("LessOrEqual", j, center))
    in_fall = e.op("And", e.op("LessOrEqual", center, j), e.op("Less", j, right))
    zero = e.scalar(0.0, F64)
    weights = e.op("Where", in_fall, fall, e.op("Where", in_rise, rise, zero))
    return [e.out(0, "Cast", weights, to=ctx.attrs.get("output_datatype", DType.float32.onnx))]
