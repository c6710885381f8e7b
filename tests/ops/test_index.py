"""Gather, GatherElements, GatherND, ScatterElements, ScatterND, Compress and
NonZero against onnxruntime, and their shape inference."""

import numpy as np
import pytest
from aic.ir import DType, GraphBuilder, OpError, TensorType

from tests.onnx_util import check_node

I64 = np.int64


def _x(rng, shape, dtype=np.float32):
    if np.dtype(dtype) == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 100, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize(
    "axis,indices",
    [(0, [2, -1, 0]), (1, [[0, 1], [-3, 2]]), (-1, 3), (2, np.zeros((0,), I64)), (1, [[-1]])],
)
@pytest.mark.parametrize("index_dtype", [np.int64, np.int32])
def test_gather(rng, axis, indices, index_dtype):
    inputs = {"x": _x(rng, (3, 4, 5)), "i": np.array(indices, index_dtype)}
    check_node("Gather", inputs, {"axis": axis})


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.float16])
def test_gather_dtypes(rng, dtype):
    check_node("Gather", {"x": _x(rng, (4, 3), dtype), "i": np.array([3, 0, -2], I64)}, {"axis": 0})


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(rng, axis):
    x = _x(rng, (3, 4))
    idx = rng.integers(-x.shape[axis], x.shape[axis], (3, 4) if axis == 0 else (3, 2)).astype(I64)
    check_node("GatherElements", {"x": x, "i": idx}, {"axis": axis})


@pytest.mark.parametrize(
    "shape,indices,batch_dims",
    [
        ((2, 2), [[0, 0], [1, 1]], 0),
        ((2, 2), [[1], [0]], 0),
        ((2, 2, 2), [[0, 1], [1, 0]], 0),
        ((2, 2, 2), [[[0, 1]], [[1, 0]]], 0),
        ((2, 2, 2), [[1], [0]], 1),
        ((2, 3, 4), [[[1, -1], [0, 2]], [[2, 0], [-3, 3]]], 1),
        ((2, 3, 4), [[[1], [2], [0]], [[3], [0], [-1]]], 2),
        ((3, 4), np.zeros((0, 2), I64), 0),
    ],
)
def test_gather_nd(rng, shape, indices, batch_dims):
    inputs = {"x": _x(rng, shape), "i": np.array(indices, I64)}
    check_node("GatherND", inputs, {"batch_dims": batch_dims})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, -1])
def test_scatter_elements(rng, reduction, axis):
    data = _x(rng, (3, 4))
    # distinct positions for "none" (duplicates are order dependent), repeated ones for reductions
    idx = np.array([[2, 0, 1, -1], [0, 1, 2, 0]] if axis == 0 else [[3, 1], [-4, 2], [0, 1]], I64)
    if reduction != "none":
        idx = np.array([[2, 2, 1, -1], [2, 1, 2, 0]] if axis == 0 else [[3, -1], [0, 0], [1, 1]], I64)
    updates = _x(rng, idx.shape)
    check_node("ScatterElements", {"x": data, "i": idx, "u": updates}, {"axis": axis, "reduction": reduction})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd(rng, reduction):
    data = _x(rng, (4, 3, 2))
    idx = np.array([[1], [3]] if reduction == "none" else [[1], [3], [1], [-1]], I64)
    updates = _x(rng, (idx.shape[0], 3, 2))
    check_node("ScatterND", {"x": data, "i": idx, "u": updates}, {"reduction": reduction})


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_scatter_nd_element_updates(rng, dtype):
    data = _x(rng, (3, 4), dtype)
    idx = np.array([[[0, 1], [2, 3]], [[1, -1], [0, 0]]], I64)
    check_node("ScatterND", {"x": data, "i": idx, "u": _x(rng, (2, 2), dtype)})
    check_node("ScatterND", {"x": data, "i": idx, "u": _x(rng, (2, 2), dtype)}, {"reduction": "add"})


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("condition", [[True, False, True], [False, True], [False, False, False, False]])
def test_compress(rng, axis, condition):
    attrs = {"axis": axis} if axis is not None else {}
    check_node("Compress", {"x": _x(rng, (3, 4)), "c": np.array(condition)}, attrs)


def test_compress_constant_condition_is_static(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("n", 4)))
    kept = b.op("Compress", x, b.const(np.array([True, False, True, True])), axis=1)
    assert kept.type.shape == ("n", 3)
    check_node("Compress", {"x": _x(rng, (2, 4))}, {"axis": 1}, initializers={"c": np.array([True, False, True, True])})


@pytest.mark.parametrize("shape", [(3, 4), (5,), (2, 0), (2, 1, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
def test_nonzero(rng, shape, dtype):
    x = _x(rng, shape, dtype) * (rng.random(shape) > 0.5).astype(dtype)
    check_node("NonZero", {"x": x.astype(dtype)})


def test_nonzero_count_is_data_dependent():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, (3, 4)))
    out = b.op("NonZero", x)
    assert out.type.dtype is DType.int64 and out.type.shape[0] == 2 and isinstance(out.type.shape[1], str)
    const = b.op("NonZero", b.const(np.array([[0, 1], [2, 0]], np.float32)))
    assert const.type.shape == (2, 2)


def test_gather_shape_and_errors():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("batch", "seq", 8)))
    idx = b.input("i", TensorType(DType.int64, ("n", 2)))
    assert b.op("Gather", x, idx, axis=1).type.shape == ("batch", "n", 2, 8)
    assert b.op("GatherND", x, idx, batch_dims=0).type.shape == ("n", 8)
    with pytest.raises(OpError, match=r"Gather node .* axis 3 is out of range for rank 3"):
        b.op("Gather", x, idx, axis=3)
    with pytest.raises(OpError, match="indices must be int32 or int64"):
        b.op("Gather", x, b.input("f", TensorType(DType.float32, (2,))))
    shape = b.op("Shape", x)
    with pytest.raises(OpError, match="out of range for a vector of 3"):
        b.op("Gather", shape, b.const(np.array([3], I64)))


UNIQUE_OUTPUTS = ("y", "indices", "inverse", "counts")


@pytest.mark.parametrize("sorted_", [0, 1])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_unique(rng, sorted_, axis, dtype):
    x = rng.integers(0, 3, (4, 3)).astype(dtype)
    x[2] = x[0]  # a repeated row for the axis=0 case
    attrs = {"sorted": sorted_} if axis is None else {"sorted": sorted_, "axis": axis}
    check_node("Unique", {"x": x}, attrs, outputs=UNIQUE_OUTPUTS)


def test_unique_types():
    b = GraphBuilder()
    y, first, inverse, counts = b.node(
        "Unique", [b.input("x", TensorType(DType.int32, ("n", 3)))], {"axis": 0}, num_outputs=4
    )
    count = y.type.shape[0]
    assert isinstance(count, str) and y.type.shape[1:] == (3,)
    assert first.type == counts.type == TensorType(DType.int64, (count,))
    assert inverse.type == TensorType(DType.int64, ("n",))
