"""Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, Expand against onnxruntime,
and symbolic shape propagation through shape arithmetic."""

import numpy as np
import pytest
from aic.frontend.onnx import load_model
from aic.ir import DType, GraphBuilder, OpError, TensorType, run_graph, verify
from onnx import TensorProto, helper

from tests.onnx_util import assert_close, check_node, run_ort

I64 = np.int64


def _x(rng, shape, dtype=np.float32):
    if np.dtype(dtype) == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 100, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("attrs", [{}, {"start": 1}, {"end": -1}, {"start": -2, "end": 3}, {"start": -9, "end": 9}])
def test_shape(rng, attrs):
    check_node("Shape", {"x": _x(rng, (2, 3, 4))}, attrs)


@pytest.mark.parametrize("shape", [(2, 3, 4), (), (0, 5)])
def test_size(rng, shape):
    check_node("Size", {"x": _x(rng, shape)})


RESHAPES = [
    ((2, 3, 4), [4, 6], 0),
    ((2, 3, 4), [-1, 4], 0),
    ((2, 3, 4), [0, -1], 0),
    ((2, 3, 4), [0, 0, 2, 2], 0),
    ((2, 3, 4), [24], 0),
    ((1,), [], 0),
    ((0, 4), [0, 2, 2], 0),
    ((0, 4), [4, 0], 1),
    ((2, 0, 3), [-1, 3], 0),
]


@pytest.mark.parametrize("shape,target,allowzero", RESHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_reshape(rng, shape, target, allowzero, dtype):
    check_node(
        "Reshape",
        {"x": _x(rng, shape, dtype)},
        {"allowzero": allowzero},
        initializers={"shape": np.array(target, I64)},
    )


def test_reshape_runtime_shape(rng):
    """A shape that is a graph input: the output rank is known, the dims are fresh symbols."""
    check_node("Reshape", {"x": _x(rng, (2, 3, 4)), "shape": np.array([3, -1], I64)})


def test_reshape_errors():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, (2, 3)))
    with pytest.raises(OpError, match=r"Reshape node .* cannot reshape \[2, 3\]"):
        b.op("Reshape", x, b.const(np.array([4, 2], I64)))
    with pytest.raises(OpError, match="more than one -1"):
        b.op("Reshape", x, b.const(np.array([-1, -1], I64)))


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten(rng, axis):
    check_node("Flatten", {"x": _x(rng, (2, 3, 4))}, {"axis": axis})


@pytest.mark.parametrize("axes", [None, [0], [-1], [0, 2]])
def test_squeeze(rng, axes):
    init = {"axes": np.array(axes, I64)} if axes is not None else None
    check_node("Squeeze", {"x": _x(rng, (1, 3, 1))}, initializers=init)


@pytest.mark.parametrize("shape,axes", [((3, 4), [0]), ((3, 4), [-1]), ((3, 4), [0, 3]), ((), [0]), ((2, 0), [1, -1])])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
def test_unsqueeze(rng, shape, axes, dtype):
    check_node("Unsqueeze", {"x": _x(rng, shape, dtype)}, initializers={"axes": np.array(axes, I64)})


def test_unsqueeze_runtime_axes(rng):
    check_node("Unsqueeze", {"x": _x(rng, (3, 4)), "axes": np.array([-1, 0], I64)})


@pytest.mark.parametrize(
    "shape,target",
    [((3, 1), [2, 3, 4]), ((3, 1), [1]), ((1, 4), [3, 1]), ((2, 1, 3), [2, 1, 0, 1]), ((), [2, 2])],
)
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_expand(rng, shape, target, dtype):
    check_node("Expand", {"x": _x(rng, shape, dtype)}, initializers={"shape": np.array(target, I64)})


def test_expand_runtime_shape(rng):
    check_node("Expand", {"x": _x(rng, (3, 1)), "shape": np.array([2, 1, 4], I64)})


# Symbolic shape propagation ----------------------------------------------------


def _dim(b, shape, i):
    index = b.const(np.array(i, I64))
    return b.op("Unsqueeze", b.op("Gather", shape, index), b.const(np.array([0], I64)))


def test_shape_arithmetic_keeps_symbols(rng):
    """f32[batch, seq, 768] -> Shape -> Gather -> Unsqueeze -> Concat -> Reshape gives [batch, seq, 12, 64]."""
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("batch", "seq", 768)))
    shape = b.op("Shape", x)
    assert shape.sym == ("batch", "seq", 768)
    target = b.op("Concat", _dim(b, shape, 0), _dim(b, shape, 1), b.const(np.array([12, 64], I64)), axis=0)
    assert target.sym == ("batch", "seq", 12, 64)
    heads = b.op("Reshape", x, target)
    assert heads.type == TensorType(DType.float32, ("batch", "seq", 12, 64))
    flat = b.op("Reshape", x, b.const(np.array([-1, 768], I64)))
    assert flat.type.shape == ("batch*seq", 768)
    back = b.op("Reshape", flat, target)
    assert back.type.shape == ("batch", "seq", 12, 64)
    graph = b.build([heads, flat, back])
    verify(graph)
    data = _x(rng, (2, 5, 768))
    got = run_graph(graph, {"x": data})
    np.testing.assert_array_equal(got[0], data.reshape(2, 5, 12, 64))
    np.testing.assert_array_equal(got[1], data.reshape(10, 768))


def test_symbolic_shape_ops():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("batch", "seq", 4)))
    shape = b.op("Shape", x, start=-2)
    assert shape.sym == ("seq", 4)
    assert b.op("Size", x).sym == ("4*batch*seq",)
    # Shape tensors keep their contents through Squeeze, Reshape, Expand and ReduceProd.
    seq = b.op("Gather", shape, b.const(np.array(0, I64)))
    assert seq.type.shape == () and seq.sym == ("seq",)
    vec = b.op("Unsqueeze", seq, b.const(np.array([0], I64)))
    assert b.op("Squeeze", vec, b.const(np.array([0], I64))).sym == ("seq",)
    assert b.op("Reshape", vec, b.const(np.array([-1], I64))).sym == ("seq",)
    assert b.op("Expand", seq, b.const(np.array([3], I64))).sym == ("seq", "seq", "seq")
    numel = b.op("ReduceProd", b.op("Shape", x), keepdims=0)
    assert numel.sym == ("4*batch*seq",)
    # Flatten and Expand keep symbolic dims of data.
    assert b.op("Flatten", x, axis=2).type.shape == ("batch*seq", 4)
    assert b.op("Expand", x, b.const(np.array([3, 1, 1, 1], I64))).type.shape == (3, "batch", "seq", 4)
    assert b.op("Unsqueeze", x, b.const(np.array([1], I64))).type.shape == ("batch", 1, "seq", 4)
    y = b.input("y", TensorType(DType.float32, ("batch", 1, "seq")))
    assert b.op("Squeeze", y, b.const(np.array([1], I64))).type.shape == ("batch", "seq")


def test_shape_arithmetic_from_onnx(rng):
    """The same split-heads subgraph read from ONNX (Constant nodes, dim_params) keeps its symbols."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Constant", [], ["zero"], value_int=0),
        helper.make_node("Constant", [], ["one"], value_int=1),
        helper.make_node("Gather", ["shape", "zero"], ["b"]),
        helper.make_node("Gather", ["shape", "one"], ["s"]),
        helper.make_node("Constant", [], ["axes"], value_ints=[0]),
        helper.make_node("Unsqueeze", ["b", "axes"], ["b1"]),
        helper.make_node("Unsqueeze", ["s", "axes"], ["s1"]),
        helper.make_node("Constant", [], ["heads"], value_ints=[12, 64]),
        helper.make_node("Concat", ["b1", "s1", "heads"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "split_heads",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 768])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 8
    loaded = load_model(model)
    assert loaded.outputs[0].type == TensorType(DType.float32, ("batch", "seq", 12, 64))
    x = _x(rng, (2, 3, 768))
    assert_close(run_graph(loaded, {"x": x})[0], run_ort(model, {"x": x})[0])
