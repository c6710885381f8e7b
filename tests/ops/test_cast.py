"""Cast and CastLike against onnxruntime, bit for bit, between every pair of element types."""

import ml_dtypes
import numpy as np
import pytest
from aic.ir import DType, GraphBuilder, OpError, TensorType, run_graph
from aic.ir.dtypes import ALL_TYPES
from onnx import helper

from tests.onnx_util import assert_close, run_interpreter, run_ort
from tests.ops.elementwise_oracle import OPSET, check, data

TYPES = sorted(ALL_TYPES - {DType.bfloat16}, key=lambda d: d.name)
FLOATS = [np.nan, np.inf, -np.inf, -0.0, 0.0, 0.4, -0.6, 1.5, -2.5, 127.9, 128.5, -128.7, 255.9, 256, 300.7]
FLOATS += [-129.5, 65535.9, 65536.5, -40000.5, 3e9, -3e9, 5e9, 2.0**31, 2.0**32, 2.0**63, 2.0**64, 1e20, -1e20]


def _values(rng, dtype: DType, target: DType) -> np.ndarray:
    if dtype is DType.bool:
        return np.array([True, False, True])
    if dtype.is_int:
        info = np.iinfo(dtype.numpy)
        extremes = np.array([info.min, info.max, 0, 1], dtype.numpy)
        return np.concatenate([extremes, data(rng, dtype, (12,), -(2**64), 2**64)])
    with np.errstate(over="ignore"):
        x = np.array(FLOATS).astype(dtype.numpy)
    if target is DType.uint32:
        # onnxruntime's uint32 conversion of NaN, -inf and values below -2**31 depends on the code path
        # (vectorised or not); aic defines them (see ir/ops/cast.py) and tests them in test_out_of_range_rules.
        x = x[~np.isnan(x) & (x.astype(np.float64) >= -(2.0**31))]
    return x


@pytest.mark.parametrize("target", TYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("source", TYPES, ids=lambda d: d.name)
def test_cast(rng, source, target):
    check("Cast", {"x": _values(rng, source, target)}, {"to": target.onnx}, rtol=0, atol=0)


def _chain(source: DType, middle: DType, target: DType, x: np.ndarray):
    """source -> Cast(middle) -> Cast(target): how bfloat16 is observed through onnxruntime's Python API."""
    nodes = [
        helper.make_node("Cast", ["x"], ["m"], to=middle.onnx),
        helper.make_node("Cast", ["m"], ["y"], to=target.onnx),
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", source.onnx, x.shape)],
        [helper.make_tensor_value_info("y", target.onnx, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    assert_close(
        run_interpreter(model, {"x": x})[0], run_ort(model, {"x": x})[0], 0, 0, f"{source}->{middle}->{target}"
    )


@pytest.mark.parametrize("other", TYPES, ids=lambda d: d.name)
def test_cast_bfloat16(rng, other):
    _chain(other, DType.bfloat16, DType.float32, _values(rng, other, DType.float32))  # rounding to bfloat16
    # From bfloat16: values exact in bfloat16, so that the first cast cannot round (onnxruntime truncates
    # there when an 8-bit integer cast follows, and rounds to nearest even otherwise).
    x = _values(rng, DType.float32, other).astype(ml_dtypes.bfloat16).astype(np.float32)
    _chain(DType.float32, DType.bfloat16, other, x)


def test_cast_float_to_bfloat16_rounds_to_nearest_even(rng):
    x = np.concatenate([rng.standard_normal(200) * 1e3, [3.4e38, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20]])
    _chain(DType.float64, DType.bfloat16, DType.float64, x)
    _chain(DType.float32, DType.bfloat16, DType.float32, x.astype(np.float32))


def test_out_of_range_rules():
    """Float -> integer outside the range, as x86-64 onnxruntime's scalar code gives it."""
    x = np.array([np.nan, np.inf, -np.inf, 3e9, -3e9, 1e20, 300.7, -129.5, 65535.9, 5e9, -2.5], np.float32)
    y = {d: check("Cast", {"x": x}, {"to": d.onnx}, rtol=0, atol=0)[0] for d in (DType.int8, DType.int32, DType.uint64)}
    assert y[DType.int32].tolist()[:7] == [-(2**31)] * 6 + [300]
    assert y[DType.int8].tolist()[6:9] == [44, 127, -1]  # via int32, keeping the low bits
    assert y[DType.uint64].tolist()[-2:] == [5_000_000_000, 2**64 - 2]
    b = GraphBuilder()
    inp = b.input("x", TensorType(DType.float32, (3,)))
    graph = b.build([b.op("Cast", inp, to=DType.uint32.onnx)])
    got = run_graph(graph, {"x": np.array([np.nan, -3e9, 3e9], np.float32)})[0]
    assert got.tolist() == [2**31, 2**31, 3_000_000_000]


@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_saturate_has_no_effect(saturate):
    """`saturate` concerns float8 only (onnxruntime even refuses it elsewhere); aic accepts and ignores it."""
    x = np.array([1e6, -1e6, 65519, 65520, 1e-8, np.nan], np.float32)
    b = GraphBuilder()
    inp = b.input("x", TensorType(DType.float32, (6,)))
    graph = b.build([b.op("Cast", inp, to=DType.float16.onnx, saturate=saturate)])
    expected = check("Cast", {"x": x}, {"to": DType.float16.onnx}, rtol=0, atol=0)[0]
    assert_close(run_graph(graph, {"x": x})[0], expected, 0, 0)


@pytest.mark.parametrize(
    "source,target",
    [
        (DType.float32, DType.int64),
        (DType.int32, DType.float16),
        (DType.bool, DType.float64),
        (DType.uint8, DType.int8),
    ],
)
def test_cast_like(rng, source, target):
    x = _values(rng, source, target)
    check("CastLike", {"x": x, "like": np.zeros(2, target.numpy)}, rtol=0, atol=0)


def test_cast_like_bfloat16_target():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("n",)))
    y = b.op("CastLike", x, b.const(np.zeros((), ml_dtypes.bfloat16)))
    assert y.type == TensorType(DType.bfloat16, ("n",))


def test_cast_to_unsupported_type():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, (2,)))
    with pytest.raises(OpError, match=r"Cast node 'cast'.*cannot cast to ONNX element type 8"):
        b.op("Cast", x, to=8)
