"""Reductions, ArgMax/ArgMin, TopK and CumSum against onnxruntime.

aic's float reductions accumulate in float64 and round once; onnxruntime
accumulates in float32, so float32 results agree to about 1e-5 relative on
these small, well-conditioned inputs.
"""

import numpy as np
import pytest
from aic.ir import DType, GraphBuilder, OpError, TensorType

from tests.onnx_util import assert_close, check_node, node_model, run_interpreter, run_ort

I64 = np.int64
REDUCTIONS = [
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
]
AXES = [None, [], [0], [-1], [0, 2], [1, -1, 0]]


def _x(rng, op, shape, dtype=np.float32):
    if np.dtype(dtype).kind in "iu":
        return rng.integers(1 if op == "ReduceProd" else -20, 5 if op == "ReduceProd" else 20, shape).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    return np.abs(x) + np.array(0.1, dtype) if op == "ReduceLogSum" else x


def _reduce(op, x, axes, opset=20, **attrs):
    init = {"axes": np.array(axes, I64)} if axes is not None else None
    check_node(op, {"x": x}, attrs, opset=opset, initializers=init)


@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduction(rng, op, axes, keepdims):
    _reduce(op, _x(rng, op, (3, 4, 5)), axes, keepdims=keepdims)


@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize("axes", [None, []])
def test_reduction_noop_with_empty_axes(rng, op, axes):
    _reduce(op, _x(rng, op, (2, 3)), axes, noop_with_empty_axes=1)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceLogSumExp"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduction_over_empty_axis(op, keepdims):
    _reduce(op, np.zeros((0, 3), np.float32), [0], keepdims=keepdims)


@pytest.mark.parametrize(
    "op,dtype",
    [
        ("ReduceSum", np.int32),
        ("ReduceSum", np.int64),
        ("ReduceSum", np.float64),
        ("ReduceMean", np.int32),
        ("ReduceMean", np.float64),
        ("ReduceMax", np.int8),
        ("ReduceMax", np.uint8),
        ("ReduceMax", np.int64),
        ("ReduceMin", np.int32),
        ("ReduceMin", np.float64),
        ("ReduceProd", np.int64),
        ("ReduceL1", np.int32),
        ("ReduceL2", np.int64),
        ("ReduceSumSquare", np.int64),
        ("ReduceLogSumExp", np.float64),
    ],
)
def test_reduction_dtypes(rng, op, dtype):
    _reduce(op, _x(rng, op, (3, 4), dtype), [1], keepdims=0)


def test_reduction_shapes_and_propagation():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("batch", "seq", 8)))
    assert b.op("ReduceMean", x, b.const(np.array([-1], I64))).type.shape == ("batch", "seq", 1)
    assert b.op("ReduceSum", x, b.const(np.array([1], I64)), keepdims=0).type.shape == ("batch", 8)
    assert b.op("ReduceMax", x).type.shape == (1, 1, 1)
    runtime_axes = b.op("ReduceSum", x, b.input("axes", TensorType(DType.int64, (1,))), keepdims=0)
    assert runtime_axes.type.rank == 2
    numel = b.op("ReduceProd", b.op("Shape", x), keepdims=1)
    assert numel.type.shape == (1,) and numel.sym == ("8*batch*seq",)
    with pytest.raises(OpError, match=r"ReduceSum node .* element type bool is not supported"):
        b.op("ReduceSum", b.input("m", TensorType(DType.bool, (2,))))
    with pytest.raises(OpError, match="repeated axes"):
        b.op("ReduceSum", x, b.const(np.array([0, -3], I64)))


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis", [0, -1, 1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("select_last_index", [0, 1])
def test_arg_extreme(rng, op, axis, keepdims, select_last_index):
    x = rng.integers(0, 3, (3, 4, 5)).astype(np.float32)  # many ties
    attrs = {"axis": axis, "keepdims": keepdims, "select_last_index": select_last_index}
    check_node(op, {"x": x}, attrs)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float64])
def test_arg_extreme_dtypes(rng, dtype):
    x = rng.integers(0, 5, (4, 6)).astype(dtype)
    check_node("ArgMax", {"x": x}, {"axis": 1})
    check_node("ArgMin", {"x": x}, {"axis": 0, "keepdims": 0})


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("k", [1, 3, 0])
def test_topk(rng, largest, axis, k):
    x = rng.integers(0, 4, (4, 5, 3)).astype(np.float32)  # ties resolve to the lower index
    check_node(
        "TopK",
        {"x": x},
        {"axis": axis, "largest": largest},
        outputs=("values", "indices"),
        initializers={"k": np.array([k], I64)},
    )


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64])
def test_topk_dtypes(rng, dtype):
    x = rng.integers(-50, 50, (3, 6)).astype(dtype)
    check_node("TopK", {"x": x}, {"largest": 0}, outputs=("v", "i"), initializers={"k": np.array([4], I64)})


def test_topk_unsorted_selects_the_same_elements(rng):
    """With sorted=0 the order is unspecified: compare the selected sets."""
    x = rng.standard_normal((3, 8)).astype(np.float32)
    inputs = {"x": x}
    model = node_model("TopK", inputs, ("v", "i"), {"sorted": 0}, initializers={"k": np.array([3], I64)})
    expected, actual = run_ort(model, inputs), run_interpreter(model, inputs)
    for e, a in zip(expected, actual):
        assert_close(np.sort(a, axis=-1), np.sort(e, axis=-1), what="TopK sorted=0")


def test_topk_symbolic_k():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("batch", 10)))
    values, indices = b.node("TopK", [x, b.const(np.array([4], I64))], num_outputs=2)
    assert values.type == TensorType(DType.float32, ("batch", 4))
    assert indices.type == TensorType(DType.int64, ("batch", 4))
    runtime_k = b.node("TopK", [x, b.input("k", TensorType(DType.int64, (1,)))], num_outputs=2)
    assert isinstance(runtime_k[0].type.shape[1], str)
    with pytest.raises(OpError, match="K=11 is out of range"):
        b.node("TopK", [x, b.const(np.array([11], I64))], num_outputs=2)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumsum(rng, axis, exclusive, reverse):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    attrs = {"exclusive": exclusive, "reverse": reverse}
    check_node("CumSum", {"x": x}, attrs, initializers={"axis": np.array(axis, I64)})


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64])
def test_cumsum_dtypes(rng, dtype):
    x = rng.integers(-10, 10, (2, 5)).astype(dtype)
    check_node("CumSum", {"x": x}, {"exclusive": 1}, initializers={"axis": np.array(1, np.int32)})
