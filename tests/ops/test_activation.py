"""Activations, PRelu, Clip and Dropout against onnxruntime, every ONNX dtype and attribute."""

import numpy as np
import pytest
from aic.ir import DType, GraphBuilder, OpError, TensorType
from aic.ir.ops import OPS

from tests.ops.elementwise_oracle import OPSET, check, data

ACTIVATIONS = [
    "Relu", "LeakyRelu", "ThresholdedRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Softplus",
    "Softsign", "Mish", "Swish", "Gelu", "Shrink",
]  # fmt: skip
ATTRS = [
    ("LeakyRelu", {"alpha": 0.3}),
    ("ThresholdedRelu", {"alpha": -0.5}),
    ("Elu", {"alpha": 0.4}),
    ("Selu", {"alpha": 2.0, "gamma": 0.7}),
    ("Celu", {"alpha": 2.5}),
    ("HardSigmoid", {"alpha": 0.4, "beta": 0.25}),
    ("Swish", {"alpha": 1.7}),
    ("Gelu", {"approximate": "tanh"}),
    ("Gelu", {"approximate": "none"}),
    ("Shrink", {"bias": 1.5, "lambd": 0.5}),
    ("Shrink", {"bias": -1.5, "lambd": 2.5}),
]


def _dtypes(op: str) -> list[DType]:
    return sorted(OPS[op].dtypes, key=lambda d: d.name)


def _opset(op: str) -> int:
    return 24 if op == "Swish" else OPSET  # onnxruntime expands Swish only at opset 24


def _options(op: str, dtype: DType) -> dict:
    if (op, dtype) == ("Shrink", DType.float64):
        return {"rtol": 1e-7}  # onnxruntime's float64 Shrink computes in float32; aic keeps float64
    if (op, dtype) == ("Relu", DType.int64):
        return {"widen": {np.dtype(np.int64): np.float64}}  # no int64 kernel; exact for small values
    return {}


@pytest.mark.parametrize("op,dtype", [pytest.param(o, d, id=f"{o}-{d.name}") for o in ACTIVATIONS for d in _dtypes(o)])
def test_activation(rng, op, dtype):
    check(op, {"x": data(rng, dtype, (3, 8), -6, 6)}, opset=_opset(op), **_options(op, dtype))


@pytest.mark.parametrize("op,attrs", ATTRS, ids=str)
@pytest.mark.parametrize("dtype", [DType.float32, DType.float16, DType.int8], ids=lambda d: d.name)
def test_activation_attrs(rng, op, attrs, dtype):
    if dtype not in OPS[op].dtypes:
        pytest.skip(f"{op} takes no {dtype.name}")
    check(op, {"x": data(rng, dtype, (4, 8), -6, 6)}, attrs, opset=_opset(op))


def test_shrink_integers_truncate():
    x = np.array([-3, -1, 0, 1, 3, 100, -100], np.int8)
    y = check("Shrink", {"x": x}, {"lambd": 0.5, "bias": 1.5})[0]
    assert y.tolist() == [-1, 0, 0, 0, 1, 98, -98]
    check("Shrink", {"x": x.astype(np.uint8)}, {"lambd": 1.5, "bias": 1.7})


PRELU_SHAPES = [((2, 3, 4, 5), (3, 1, 1)), ((2, 3, 4), (4,)), ((2, 3), ()), ((5,), (5,)), ((0, 3), (3,))]


@pytest.mark.parametrize("sx,ss", PRELU_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", _dtypes("PRelu"), ids=lambda d: d.name)
def test_prelu(rng, dtype, sx, ss):
    # onnxruntime registers its integer and float64 PRelu kernels for opset 16 only
    check("PRelu", {"x": data(rng, dtype, sx, -50, 50), "slope": data(rng, dtype, ss, -3, 3)}, opset=16)


def test_prelu_slope_must_broadcast_to_x():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, (1, 3)))
    with pytest.raises(OpError, match=r"PRelu node 'prelu'.*slope must broadcast"):
        b.op("PRelu", x, b.input("s", TensorType(DType.float32, (2, 3))))


CLIP_BOUNDS = [(None, None), (1.5, None), (None, 2.0), (-1.5, 2.0), (3.0, 1.0), (np.nan, 1.0)]


@pytest.mark.parametrize("lo,hi", CLIP_BOUNDS, ids=str)
@pytest.mark.parametrize("dtype", _dtypes("Clip"), ids=lambda d: d.name)
def test_clip(rng, dtype, lo, hi):
    if dtype.is_int and lo is not None and (np.isnan(lo) or (lo < 0 and not dtype.is_signed)):
        pytest.skip(f"{lo} is not a {dtype.name}")
    bounds = {n: np.array(v, dtype.numpy) for n, v in (("lo", lo), ("hi", hi)) if v is not None}
    names = ["x", "lo" if lo is not None else "", "hi" if hi is not None else ""]
    # bfloat16 is checked through onnxruntime's float32 kernel, whose default bounds are float32's
    special = dtype is not DType.bfloat16 or None not in (lo, hi)
    check("Clip", {"x": data(rng, dtype, (4, 6), -5, 5, special)}, initializers=bounds, input_names=names)


def test_clip_bounds_as_inputs_and_shapes(rng):
    x = data(rng, DType.float32, (), -5, 5)
    check("Clip", {"x": x, "lo": np.array(-1.0, np.float32), "hi": np.array([1.0], np.float32)})
    check("Clip", {"x": data(rng, DType.int64, (0, 3))}, initializers={"lo": np.array(0, np.int64)})


def test_clip_rejects_non_scalar_bounds():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, (4,)))
    with pytest.raises(OpError, match="min must be a scalar"):
        b.op("Clip", x, b.const(np.zeros(2, np.float32)))


@pytest.mark.parametrize("dtype", _dtypes("Dropout"), ids=lambda d: d.name)
def test_dropout_inference(rng, dtype):
    x = data(rng, dtype, (3, 4))
    _, mask = check("Dropout", {"x": x}, outputs=("y", "mask"))
    assert mask.dtype == np.bool_ and mask.all()
    check("Dropout", {"x": x}, initializers={"r": np.array(0.7, np.float32)})


def test_dropout_training_mode_false():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    inits = {"r": np.array(0.5, np.float64), "t": np.array(False)}
    check("Dropout", {"x": x}, initializers=inits, outputs=("y", "mask"), input_names=["x", "r", "t"])
    check("Dropout", {"x": x}, initializers={"t": np.array(False)}, input_names=["x", "", "t"])


def test_dropout_refuses_training():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, (2,)))
    with pytest.raises(OpError, match=r"Dropout node 'dropout'.*training_mode must be a constant false"):
        b.op("Dropout", x, None, b.const(np.array(True)))
    with pytest.raises(OpError, match="training_mode must be a constant false"):
        b.op("Dropout", x, None, b.input("t", TensorType(DType.bool, ())))
