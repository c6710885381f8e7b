"""Activation functions, Clip, and Dropout at inference. Float semantics as in
`elementwise`: formulas with exp/log/tanh/erf are computed in float64 and rounded
once; piecewise-linear ones in the working precision, in onnxruntime's order of
operations (so HardSwish is x * clip(x * f32(1/6) + 0.5, 0, 1) in float32).
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np

from ..dtypes import FLOAT_TYPES, NUMERIC_TYPES, DType
from ..types import TensorType
from .cast import is_float_array
from .common import broadcast_shapes, check_same_dtype
from .elementwise import SIGNED_TYPES, cost_flops, finish, unary, working
from .registry import Attr, InferContext, OpDef, register
from .unary import erf


def _hard_sigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return np.minimum(np.maximum(x * x.dtype.type(alpha) + x.dtype.type(beta), 0), 1)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0, x)


def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def _shrink(x: np.ndarray, bias: float, lambd: float) -> np.ndarray:
    if not is_float_array(x):
        x = x.astype(np.float32)  # onnxruntime computes integer Shrink in float32, then truncates
    t = x.dtype.type
    return np.where(x < -t(lambd), x + t(bias), np.where(x > t(lambd), x - t(bias), 0))


def _alpha(default: float) -> dict[str, Attr]:
    return {"alpha": Attr("float", default)}


unary("Relu", lambda x: np.maximum(x, 0), SIGNED_TYPES)
unary(
    "LeakyRelu",
    lambda x, alpha: np.where(x >= 0, x, x.dtype.type(alpha) * x),
    FLOAT_TYPES,
    attrs=_alpha(0.01),
    cost=2,
)
unary("ThresholdedRelu", lambda x, alpha: np.where(x > alpha, x, 0), FLOAT_TYPES, attrs=_alpha(1.0))
unary("Elu", lambda x, alpha: np.where(x > 0, x, alpha * np.expm1(x)), FLOAT_TYPES, attrs=_alpha(1.0), precise=True)
unary(
    "Selu",
    lambda x, alpha, gamma: gamma * np.where(x > 0, x, alpha * np.expm1(x)),
    FLOAT_TYPES,
    attrs={"alpha": Attr("float", 1.67326319217681884765625), "gamma": Attr("float", 1.05070102214813232421875)},
    precise=True,
)
unary(
    "Celu",
    lambda x, alpha: np.maximum(x, 0) + np.minimum(0, alpha * np.expm1(x / alpha)),
    FLOAT_TYPES,
    attrs=_alpha(1.0),
    precise=True,
)
unary(
    "HardSigmoid",
    _hard_sigmoid,
    FLOAT_TYPES,
    attrs={"alpha": Attr("float", 0.2), "beta": Attr("float", 0.5)},
    cost=4,
)
unary("HardSwish", lambda x: x * _hard_sigmoid(x, 1 / 6, 0.5), FLOAT_TYPES, cost=5)
unary("Softplus", _softplus, FLOAT_TYPES, precise=True, cost=3)
unary("Softsign", lambda x: x / (1 + np.abs(x)), FLOAT_TYPES, cost=3)
unary("Mish", lambda x: x * np.tanh(_softplus(x)), FLOAT_TYPES, precise=True, cost=5)
unary("Swish", lambda x, alpha: x / (1 + np.exp(-alpha * x)), FLOAT_TYPES, attrs=_alpha(1.0), precise=True, cost=4)
unary(
    "Gelu",
    _gelu,
    FLOAT_TYPES,
    attrs={"approximate": Attr("string", "none", ("none", "tanh"))},
    precise=True,
    cost=8,
)
unary(
    "Shrink",
    _shrink,
    NUMERIC_TYPES - {DType.bfloat16},
    attrs={"bias": Attr("float", 0.0), "lambd": Attr("float", 0.5)},
    cost=3,
    doc="x < -lambd: x + bias; x > lambd: x - bias; else 0. Integers compute in float32 and truncate.",
)


# PRelu -----------------------------------------------------------------------------------


def _prelu_infer(ctx: InferContext) -> list[TensorType]:
    check_same_dtype(ctx, 0, 1)
    x = ctx.input(0)
    if broadcast_shapes(ctx, x.shape, ctx.input(1).shape) != x.shape:
        raise ctx.error("slope must broadcast to the shape of X")
    return [x]


def _prelu_reference(inputs, attrs):
    x, slope = inputs
    with np.errstate(all="ignore"):
        w = working(x)
        y = np.where(w < 0, w * working(slope), w)
    return [finish(y, DType.from_numpy(x.dtype))]


register(
    OpDef(
        "PRelu",
        _prelu_infer,
        _prelu_reference,
        inputs=(2, 2),
        dtypes=FLOAT_TYPES | {DType.int32, DType.int64, DType.uint32, DType.uint64},
        kind="elementwise",
        flops=cost_flops(2),
        doc="x < 0 ? slope * x : x, slope broadcasting to X.",
    )
)


# Clip ---------------------------------------------------------------------------------------


def _clip_infer(ctx: InferContext) -> list[TensorType]:
    check_same_dtype(ctx, 0, 1, 2)
    for i, what in ((1, "min"), (2, "max")):
        if ctx.has(i) and ctx.input(i).is_static and ctx.input(i).numel != 1:
            raise ctx.error(f"{what} must be a scalar, got {ctx.input(i)}")
    return [ctx.input(0)]


def _clip_reference(inputs, attrs):
    x, lo, hi = [*inputs, None, None][:3]
    info = ml_dtypes.finfo(x.dtype) if is_float_array(x) else np.iinfo(x.dtype)
    # The defaults are the lowest and highest finite values, so infinities clip too.
    lo = x.dtype.type(info.min) if lo is None else lo.reshape(())
    hi = x.dtype.type(info.max) if hi is None else hi.reshape(())
    with np.errstate(invalid="ignore"):  # compare and select: a NaN bound is ignored, a NaN input kept
        y = np.where(x < lo, lo, x)
        return [np.where(hi < y, hi, y)]


register(
    OpDef(
        "Clip",
        _clip_infer,
        _clip_reference,
        inputs=(1, 3),
        dtypes=NUMERIC_TYPES,
        kind="elementwise",
        flops=cost_flops(2),
        doc="min(max(x, min), max) with optional scalar bounds (default: the finite range); min > max gives max.",
    )
)


# Dropout ------------------------------------------------------------------------------------


def _dropout_infer(ctx: InferContext) -> list[TensorType]:
    if ctx.has(1) and not ctx.input(1).dtype.is_float:
        raise ctx.error("ratio must be a float scalar")
    if ctx.has(2):
        mode = ctx.const(2)
        if ctx.input(2).dtype is not DType.bool or mode is None or np.any(mode):
            raise ctx.error("training_mode must be a constant false: aic compiles models for inference")
    x = ctx.input(0)
    return [x, x.with_dtype(DType.bool)]


register(
    OpDef(
        "Dropout",
        _dropout_infer,
        lambda inputs, attrs: [inputs[0], np.ones(inputs[0].shape, dtype=bool)],
        attrs={"seed": Attr("int", None)},
        inputs=(1, 3),
        outputs=(1, 2),
        dtypes=FLOAT_TYPES,
        kind="elementwise",
        flops=lambda ins, outs, attrs: 0,
        doc="Inference Dropout: the input unchanged, and an all-true mask.",
    )
)
