"""Transpose, Concat, Split, Slice, Pad, Tile, DepthToSpace, SpaceToDepth,
ReverseSequence and Trilu against onnxruntime, and their symbolic shapes."""

import numpy as np
import pytest
from aic.ir import DType, GraphBuilder, OpError, TensorType, run_graph

from tests.onnx_util import check_node

I64 = np.int64
INT_MAX = 2**63 - 1


def _x(rng, shape, dtype=np.float32):
    if np.dtype(dtype) == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 100, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("perm", [None, [0, 2, 1], [2, 0, 1], [1, 2, 0]])
@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.bool_])
def test_transpose(rng, perm, dtype):
    check_node("Transpose", {"x": _x(rng, (2, 3, 4), dtype)}, {"perm": perm} if perm else {})


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_concat(rng, axis, dtype):
    a = _x(rng, (2, 3, 4), dtype)
    shape_b = list(a.shape)
    shape_b[axis] = 2
    inputs = {"a": a, "b": _x(rng, shape_b, dtype), "c": _x(rng, a.shape, dtype)}
    check_node("Concat", inputs, {"axis": axis})


def test_concat_empty(rng):
    check_node("Concat", {"a": _x(rng, (2, 0)), "b": _x(rng, (2, 3))}, {"axis": 1})


@pytest.mark.parametrize(
    "shape,axis,split,n",
    [
        ((6, 2), 0, [1, 2, 3], 3),
        ((2, 7), -1, [7, 0], 2),
        ((6, 2), 0, None, 3),
        ((2, 7), 1, None, 3),
        ((5,), 0, None, 2),
    ],
)
def test_split(rng, shape, axis, split, n):
    outputs = tuple(f"y{i}" for i in range(n))
    attrs = {"axis": axis} if split is not None else {"axis": axis, "num_outputs": n}
    init = {"split": np.array(split, I64)} if split is not None else None
    check_node("Split", {"x": _x(rng, shape)}, attrs, outputs=outputs, opset=18, initializers=init)


SLICES = [
    # starts, ends, axes, steps
    ([1], [3], None, None),
    ([0, 1], [2, -1], [0, 2], None),
    ([-3], [INT_MAX], [1], None),
    ([10], [20], [1], None),
    ([-100], [100], [-1], [2]),
    ([INT_MAX], [-INT_MAX], [2], [-1]),
    ([-1], [-INT_MAX], [1], [-2]),
    ([3], [0], [2], [-1]),
    ([-10], [-20], [1], [-1]),
    ([2], [1], [0], None),
    ([0, 0, 0], [2, 4, 5], [2, 1, 0], [1, 3, 2]),
]


@pytest.mark.parametrize("starts,ends,axes,steps", SLICES)
def test_slice(rng, starts, ends, axes, steps):
    init = {"starts": np.array(starts, I64), "ends": np.array(ends, I64)}
    if axes is not None:
        init["axes"] = np.array(axes, I64)
    if steps is not None:
        init["steps"] = np.array(steps, I64)
    names = ["x", "starts", "ends"]
    if steps is not None:
        names += ["axes" if axes is not None else "", "steps"]
    elif axes is not None:
        names.append("axes")
    check_node("Slice", {"x": _x(rng, (3, 4, 5))}, initializers=init, input_names=names)


@pytest.mark.parametrize("dtype", [np.int32, np.bool_, np.float16])
def test_slice_dtypes_and_runtime_bounds(rng, dtype):
    inputs = {"x": _x(rng, (4, 6), dtype), "starts": np.array([1, -1], I64), "ends": np.array([3, 0], I64)}
    check_node("Slice", inputs, initializers={"axes": np.array([0, 1], I64), "steps": np.array([1, -2], I64)})


PADS = [
    ([0, 2, 0, 0], None),
    ([1, 1, 2, 2], None),
    ([0, -1, 0, 2], None),
    ([2, 1], [1]),
    ([1, 0], [-2]),
]


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads,axes", PADS)
def test_pad(rng, mode, pads, axes):
    init = {"pads": np.array(pads, I64)}
    names = ["x", "pads"]
    if mode == "constant":
        init["value"] = np.array(1.5, np.float32)
        names.append("value")
    if axes is not None:
        init["axes"] = np.array(axes, I64)
        names += [""] * (3 - len(names)) + ["axes"]
    check_node("Pad", {"x": _x(rng, (3, 4))}, {"mode": mode}, initializers=init, input_names=names)


@pytest.mark.parametrize("dtype", [np.int32, np.bool_, np.float64])
def test_pad_default_value(rng, dtype):
    check_node("Pad", {"x": _x(rng, (2, 3), dtype)}, initializers={"pads": np.array([1, 0, 0, 2], I64)})


@pytest.mark.parametrize("shape,repeats", [((2, 3), [2, 1]), ((2, 3), [1, 3]), ((3,), [0]), ((2, 0), [2, 2])])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_tile(rng, shape, repeats, dtype):
    check_node("Tile", {"x": _x(rng, shape, dtype)}, initializers={"repeats": np.array(repeats, I64)})


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("blocksize", [2, 3])
def test_depth_to_space(rng, mode, blocksize):
    x = _x(rng, (2, 2 * blocksize * blocksize, 3, 2))
    check_node("DepthToSpace", {"x": x}, {"blocksize": blocksize, "mode": mode})


@pytest.mark.parametrize("blocksize", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_space_to_depth(rng, blocksize, dtype):
    check_node("SpaceToDepth", {"x": _x(rng, (2, 3, 2 * blocksize, 3 * blocksize), dtype)}, {"blocksize": blocksize})


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_space_to_depth_inverts_depth_to_space(rng, mode):
    """SpaceToDepth's mode (opset 28) has no onnxruntime kernel yet: check it undoes DepthToSpace."""
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, (2, 12, 3, 2)))
    y = b.op("SpaceToDepth", b.op("DepthToSpace", x, blocksize=2, mode=mode), blocksize=2, mode=mode)
    data = _x(rng, (2, 12, 3, 2))
    np.testing.assert_array_equal(run_graph(b.build([y]), {"x": data})[0], data)


@pytest.mark.parametrize("batch_axis,time_axis", [(1, 0), (0, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_reverse_sequence(rng, batch_axis, time_axis, dtype):
    shape = [4, 4, 2]
    x = _x(rng, shape, dtype)
    lens = np.array([4, 1, 0, 3], I64)
    check_node("ReverseSequence", {"x": x, "lens": lens}, {"batch_axis": batch_axis, "time_axis": time_axis})


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 2, -1, -5])
@pytest.mark.parametrize("shape,dtype", [((4, 5), np.float32), ((2, 3, 4), np.int64), ((5, 3), np.float32)])
def test_trilu(rng, upper, k, shape, dtype):
    init = {"k": np.array(k, I64)} if k is not None else None
    check_node("Trilu", {"x": _x(rng, shape, dtype)}, {"upper": upper}, initializers=init)


# Symbolic shapes ----------------------------------------------------------


def _slice(b, x, starts, ends, axes, steps=None):
    args = [x, *(b.const(np.array(v, I64)) for v in (starts, ends, axes))]
    if steps is not None:
        args.append(b.const(np.array(steps, I64)))
    return b.op("Slice", *args).type.shape


def test_symbolic_slice():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("batch", "seq", 16)))
    assert _slice(b, x, [0], [INT_MAX], [1]) == ("batch", "seq", 16)
    assert _slice(b, x, [-1], [INT_MAX], [1]) == ("batch", 1, 16)
    assert _slice(b, x, [1], [INT_MAX], [1]) == ("batch", "seq-1", 16)
    assert _slice(b, x, [0], [-1], [1]) == ("batch", "seq-1", 16)
    assert _slice(b, x, [-3], [-1], [1]) == ("batch", 2, 16)
    assert _slice(b, x, [-1], [-INT_MAX], [1], [-1]) == ("batch", "seq", 16)
    assert _slice(b, x, [4], [12], [-1], [2]) == ("batch", "seq", 4)
    clamped = _slice(b, x, [0], [8], [1])  # min(seq, 8) is unknown: a fresh symbol
    assert isinstance(clamped[1], str) and clamped[1] != "seq"
    # A symbolic end taken from a Shape slices a static buffer to a symbolic length.
    shape = b.op("Shape", x)
    seq = b.op("Slice", shape, *(b.const(np.array([v], I64)) for v in (1, 2)))
    assert seq.sym == ("seq",)
    table = b.const(np.zeros((1024, 16), np.float32))
    rows = b.op("Slice", table, b.const(np.array([0], I64)), seq, b.const(np.array([0], I64)))
    assert rows.type.shape == ("seq", 16)
    rest = b.op("Slice", table, seq, b.const(np.array([INT_MAX], I64)), b.const(np.array([0], I64)))
    assert rest.type.shape == ("1024-seq", 16)


def test_symbolic_concat_split_pad_tile():
    b = GraphBuilder()
    past = b.input("past", TensorType(DType.float32, ("batch", "past", 8)))
    new = b.input("new", TensorType(DType.float32, ("batch", "seq", 8)))
    both = b.op("Concat", past, new, axis=1)
    assert both.type.shape == ("batch", "past+seq", 8)
    halves = b.node("Split", [new], {"axis": 2, "num_outputs": 2}, num_outputs=2)
    assert [h.type.shape for h in halves] == [("batch", "seq", 4)] * 2
    parts = b.node("Split", [new, b.const(np.array([3, 5], I64))], {"axis": -1}, num_outputs=2)
    assert [p.type.shape for p in parts] == [("batch", "seq", 3), ("batch", "seq", 5)]
    padded = b.op("Pad", new, b.const(np.array([0, 1, 0, 0, 2, 0], I64)))
    assert padded.type.shape == ("batch", "seq+3", 8)
    tiled = b.op("Tile", new, b.const(np.array([2, 1, 3], I64)))
    assert tiled.type.shape == ("2*batch", "seq", 24)
    moved = b.op("DepthToSpace", b.input("img", TensorType(DType.float32, ("n", 8, "h", 3))), blocksize=2)
    assert moved.type.shape == ("n", 2, "2*h", 6)
    shape = b.op("Shape", new)
    first, rest = b.node("Split", [shape, b.const(np.array([1, 2], I64))], {}, num_outputs=2)
    assert first.sym == ("batch",) and rest.sym == ("seq", 8)
    assert b.op("Tile", first, b.const(np.array([2], I64))).sym == ("batch", "batch")


def test_movement_errors():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, (2, 3)))
    with pytest.raises(OpError, match=r"Concat node .* differ in size along axis 1 \(3 vs 4\)"):
        b.op("Concat", x, b.input("y", TensorType(DType.float32, (2, 4))), axis=0)
    with pytest.raises(OpError, match="does not sum to the axis size 3"):
        b.node("Split", [x, b.const(np.array([1, 1], I64))], {"axis": 1}, num_outputs=2)
    with pytest.raises(OpError, match="not a permutation"):
        b.op("Transpose", x, perm=[0, 0])
    with pytest.raises(OpError, match="not divisible by 4"):
        b.op("DepthToSpace", b.input("img", TensorType(DType.float32, (1, 6, 2, 2))), blocksize=2)
