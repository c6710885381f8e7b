"""Models at the edges of what compiles: sizes beyond 64 bits or any memory are
refused by name (compiler/limits.py), very deep graphs and very long names compile
and run correctly."""

import numpy as np
import onnx
import pytest
from aic.compiler.limits import SizeError
from onnx import TensorProto as T
from onnx import helper as h

import aic


def vi(name, shape, elem=T.FLOAT):
    return h.make_tensor_value_info(name, elem, shape)


def model(nodes, inputs, outputs, initializers=()):
    graph = h.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)


def test_input_bytes_beyond_int64_refused():
    m = model([h.make_node("Relu", ["x"], ["y"])], [vi("x", [2**32, 2**32])], [vi("y", None)])
    with pytest.raises(SizeError, match=r"value 'x' of type f32\[4294967296,4294967296\] needs 64 EiB"):
        aic.compile(m)


def test_output_of_terabytes_refused():
    shape = onnx.numpy_helper.from_array(np.array([2**14] * 3, np.int64), "s")
    m = model([h.make_node("Expand", ["x", "s"], ["y"])], [vi("x", [1])], [vi("y", None)], [shape])
    with pytest.raises(SizeError, match=r"value 'y' of type f32\[16384,16384,16384\] needs 16 TiB"):
        aic.compile(m)


def test_range_of_2_to_the_40_refused():
    ints = [onnx.numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("a", 0), ("b", 2**40), ("c", 1))]
    m = model([h.make_node("Range", ["a", "b", "c"], ["y"])], [], [vi("y", None, T.INT64)], ints)
    with pytest.raises(SizeError, match=r"value 'y' of type i64\[1099511627776\] needs 8 TiB"):
        aic.compile(m)


def test_ten_thousand_node_chain():
    """Fusion cuts the chain into kernels of bounded depth (compiler/fusion.py MAX_DEPTH)."""
    ops = ["Relu", "Neg", "Abs", "Sigmoid"]
    n = 10_000
    nodes = [h.make_node(ops[i % 4], [f"t{i}"], [f"t{i + 1}"]) for i in range(n)]
    m = model(nodes, [vi("t0", [4])], [vi(f"t{n}", [4])])
    x = np.array([-1, 0.5, 2, -3], np.float32)
    ref = x.copy()
    for i in range(n):  # float32 reference, op by op
        ref = [np.maximum(ref, 0), -ref, np.abs(ref), 1 / (1 + np.exp(-ref))][i % 4].astype(np.float32)
    np.testing.assert_allclose(aic.compile(m).run(None, {"t0": x})[0], ref, rtol=1e-6, atol=1e-6)


def test_names_of_thousands_of_characters():
    """LLVM cuts long value names, so two names sharing a long prefix once collided."""
    a, b = "n" * 5000 + "a", "n" * 5000 + "b"
    m = model(
        [h.make_node("Relu", [a], [b], name=a), h.make_node("Neg", [b], ["y"], name=b)], [vi(a, [2])], [vi("y", [2])]
    )
    x = np.array([-1, 2], np.float32)
    np.testing.assert_array_equal(aic.compile(m).run(None, {a: x})[0], -np.maximum(x, 0))
