"""Constant, ConstantOfShape, Range, EyeLike and OneHot against onnxruntime."""

import numpy as np
import onnx
import pytest
from aic.ir import DType, GraphBuilder, OpError, TensorType, run_graph

from tests.onnx_util import assert_close, check_node, node_model, run_interpreter

I64 = np.int64


CONSTANTS = [
    ("value", np.arange(6, dtype=np.float32).reshape(2, 3), np.arange(6, dtype=np.float32).reshape(2, 3)),
    ("value", np.array([True, False]), np.array([True, False])),
    ("value", np.array(7, np.int32), np.array(7, np.int32)),
    ("value_float", 2.5, np.array(2.5, np.float32)),
    ("value_floats", [1.0, -2.0], np.array([1.0, -2.0], np.float32)),
    ("value_int", 3, np.array(3, np.int64)),
    ("value_ints", [4, 5, 6], np.array([4, 5, 6], np.int64)),
]


@pytest.mark.parametrize("attr,value,expected", CONSTANTS)
def test_constant(attr, value, expected):
    proto_value = onnx.numpy_helper.from_array(value) if isinstance(value, np.ndarray) else value
    (out,) = check_node("Constant", {}, {attr: proto_value})
    assert_close(out, expected)
    # the aic Constant op itself (the ONNX frontend turns Constant nodes into graph constants)
    b = GraphBuilder()
    y = b.op("Constant", **{attr: value})
    assert y.type == TensorType(DType.from_numpy(expected.dtype), expected.shape)
    (got,) = run_graph(b.build([y]), {})
    assert_close(got, expected)


def test_constant_needs_one_value():
    b = GraphBuilder()
    with pytest.raises(OpError, match="needs exactly one of the attributes"):
        b.op("Constant", value_int=1, value_float=2.0)
    ints = b.op("Constant", value_ints=[2, 3])
    assert ints.type == TensorType(DType.int64, (2,)) and ints.sym == (2, 3)
    assert b.op("Reshape", b.input("x", TensorType(DType.float32, (6,))), ints).type.shape == (2, 3)


@pytest.mark.parametrize("shape", [[2, 3], [4], [], [0, 2]])
@pytest.mark.parametrize("value", [None, np.array([1.5], np.float32), np.array([7], np.int64), np.array([True])])
def test_constant_of_shape(shape, value):
    attrs = {"value": onnx.numpy_helper.from_array(value)} if value is not None else {}
    check_node("ConstantOfShape", {}, attrs, initializers={"shape": np.array(shape, I64)})
    check_node("ConstantOfShape", {"shape": np.array(shape, I64)}, attrs)


def test_constant_of_shape_symbolic():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("batch", "seq")))
    zeros = b.op("ConstantOfShape", b.op("Shape", x))
    assert zeros.type == TensorType(DType.float32, ("batch", "seq"))
    ones = b.op("ConstantOfShape", b.const(np.array([3], I64)), value=np.array([1], I64))
    assert ones.sym == (1, 1, 1)


INT_RANGES = [(0, 5, 1), (3, 9, 3), (10, 4, -2), (0, 0, 1), (5, 0, 1), (-3, 7, 4)]
FLOAT_RANGES = [(0.5, 3.0, 0.7), (1.0, -2.0, -0.25)]
RANGE_CASES = [(r, t) for r in INT_RANGES for t in (np.int16, np.int32, np.int64, np.float32, np.float64)] + [
    (r, t) for r in FLOAT_RANGES for t in (np.float32, np.float64)
]


@pytest.mark.parametrize("bounds,dtype", RANGE_CASES)
def test_range(bounds, dtype):
    values = {n: np.array(v, dtype) for n, v in zip(("start", "limit", "delta"), bounds)}
    check_node("Range", {}, initializers=values)
    check_node("Range", values)


def test_range_symbolic():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("batch", "seq")))
    seq = b.op("Gather", b.op("Shape", x), b.const(np.array(1, I64)))
    positions = b.op("Range", b.const(np.array(0, I64)), seq, b.const(np.array(1, I64)))
    assert positions.type == TensorType(DType.int64, ("seq",))
    small = b.op("Range", *(b.const(np.array(v, I64)) for v in (1, 7, 2)))
    assert small.type.shape == (3,) and small.sym == (1, 3, 5)
    with pytest.raises(OpError, match="delta must be non-zero"):
        b.op("Range", *(b.const(np.array(v, I64)) for v in (1, 7, 0)))


@pytest.mark.parametrize("shape", [(3, 3), (3, 5), (4, 2)])
@pytest.mark.parametrize("k", [0, 1, -2, 6])
def test_eye_like(shape, k):
    check_node("EyeLike", {"x": np.zeros(shape, np.float32)}, {"k": k})


@pytest.mark.parametrize("dtype", [DType.int32, DType.float64])
def test_eye_like_dtype(dtype):
    check_node("EyeLike", {"x": np.zeros((3, 4), np.int64)}, {"dtype": dtype.onnx, "k": 1})


def test_eye_like_bool():
    """onnxruntime has no bool EyeLike kernel: compare with numpy."""
    model = node_model("EyeLike", {"x": np.zeros((2, 3), np.float32)}, attrs={"dtype": DType.bool.onnx, "k": -1})
    (out,) = run_interpreter(model, {"x": np.zeros((2, 3), np.float32)})
    assert_close(out, np.eye(2, 3, -1, dtype=bool))


# (indices, depth, values) type combinations that onnxruntime has kernels for
ONE_HOT_TYPES = [
    (np.int64, np.int64, np.float32),
    (np.int64, np.float32, np.int32),
    (np.int32, np.int32, np.float32),
    (np.float32, np.float32, np.float32),
    (np.float32, np.int64, np.int64),
]


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("types", ONE_HOT_TYPES)
def test_one_hot(axis, types):
    index_type, depth_type, value_type = types
    indices = np.array([[0, 3, -1], [2, 7, -5]], index_type)
    inputs = {"i": indices, "depth": np.array(4, depth_type), "values": np.array([-1, 2], value_type)}
    check_node("OneHot", inputs, {"axis": axis})


def test_one_hot_constant_depth():
    inputs = {"i": np.array([1, 0, 2], I64)}
    init = {"depth": np.array([3.0], np.float32), "values": np.array([0, 1], np.int32)}
    check_node("OneHot", inputs, initializers=init)
    b = GraphBuilder()
    i = b.input("i", TensorType(DType.int64, ("n",)))
    out = b.op("OneHot", i, *(b.const(v) for v in init.values()), axis=0)
    assert out.type == TensorType(DType.int32, (3, "n"))
