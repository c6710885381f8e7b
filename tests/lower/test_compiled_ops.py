"""The compiled path: single-node and small fused ONNX models through `aic.compile` (loop IR -> LLVM -> .so),
against onnxruntime."""

import numpy as np
import onnx
import pytest
from onnx import helper

import aic
from tests.onnx_util import assert_close, graph_model, node_model, run_ort

rng = np.random.default_rng(7)


def f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def check_compiled(model: onnx.ModelProto, feeds: dict[str, np.ndarray], rtol: float = 1e-5, atol: float = 1e-5):
    expected = run_ort(model, feeds)
    actual = aic.compile(model, num_threads=1).run(None, feeds)
    for a, e in zip(actual, expected):
        assert_close(a, e, rtol, atol)


def test_back_end_exists():
    from aic.codegen.llvm import compile_program
    from aic.compiler.pipeline import compile_model

    assert callable(compile_program) and callable(compile_model)


# (op, graph inputs, attributes, constant inputs, node input order, outputs)
CASES = [
    ("Add", {"a": f(2, 3, 37), "b": f(37)}, {}, None, None, 1),
    ("Where", {"c": rng.random((3, 20)) > 0.5, "a": f(3, 20), "b": f(20)}, {}, None, None, 1),
    ("Cast", {"x": f(4, 19) * 50}, {"to": 7}, None, None, 1),
    ("Gelu", {"x": f(3, 40)}, {}, None, None, 1),
    ("Erf", {"x": f(3, 40)}, {}, None, None, 1),
    ("Pow", {"x": np.abs(f(5, 17))}, {}, {"e": np.array(3.0, np.float32)}, ["x", "e"], 1),
    ("Clip", {"x": f(3, 40)}, {}, {"lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)},
     ["x", "lo", "hi"], 1),
    ("MatMul", {"a": f(13, 24)}, {}, {"b": f(24, 70)}, ["a", "b"], 1),
    ("MatMul", {"a": f(2, 4, 9, 16), "b": f(2, 4, 16, 9)}, {}, None, None, 1),
    ("Gemm", {"a": f(3, 50)}, {"transB": 1}, {"b": f(40, 50), "c": f(40)}, ["a", "b", "c"], 1),
    ("Conv", {"x": f(1, 8, 9, 9)}, {"pads": [1, 1, 1, 1]}, {"w": f(32, 8, 3, 3), "b": f(32)}, ["x", "w", "b"], 1),
    ("Conv", {"x": f(1, 16, 9, 9)}, {"pads": [1, 1, 1, 1], "strides": [2, 2], "group": 16},
     {"w": f(16, 1, 3, 3)}, ["x", "w"], 1),
    ("MaxPool", {"x": f(1, 4, 11, 11)}, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
     None, None, 1),
    ("AveragePool", {"x": f(1, 4, 9, 9)}, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, None, None, 1),
    ("GlobalAveragePool", {"x": f(1, 40, 7, 7)}, {}, None, None, 1),
    ("ReduceMean", {"x": f(3, 50)}, {}, {"a": i64(1)}, ["x", "a"], 1),
    ("ArgMax", {"x": f(3, 50)}, {"axis": 1}, None, None, 1),
    ("Softmax", {"x": f(2, 3, 70)}, {}, None, None, 1),
    ("LayerNormalization", {"x": f(2, 5, 48), "s": f(48), "b": f(48)}, {}, None, None, 1),
    ("Transpose", {"x": f(2, 5, 3, 8)}, {"perm": [0, 2, 1, 3]}, None, None, 1),
    ("Concat", {"a": f(2, 3, 5), "b": f(2, 4, 5)}, {"axis": 1}, None, None, 1),
    ("Split", {"x": f(4, 30)}, {"axis": 1, "num_outputs": 2}, None, None, 2),
    ("Slice", {"x": f(6, 20)}, {}, {"s": i64(1, 2), "e": i64(5, 19), "a": i64(0, 1)}, ["x", "s", "e", "a"], 1),
    ("Gather", {"x": f(10, 24), "i": i64(3, 0, 9, -1)}, {}, None, None, 1),
    ("Expand", {"x": f(1, 24)}, {}, {"s": i64(5, 24)}, ["x", "s"], 1),
    ("Trilu", {"x": f(6, 6)}, {"upper": 0}, None, None, 1),
    ("Resize", {"x": f(1, 2, 5, 5)}, {"mode": "linear"}, {"r": np.array([], np.float32),
                                                          "s": np.array([1, 1, 2, 2], np.float32)}, ["x", "r", "s"], 1),
    ("TopK", {"x": f(3, 20)}, {}, {"k": i64(4)}, ["x", "k"], 2),
    ("CumSum", {"x": f(3, 20)}, {}, {"a": i64(1)}, ["x", "a"], 1),
]


@pytest.mark.parametrize(("op", "inputs", "attrs", "consts", "names", "outputs"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_compiled_op(op, inputs, attrs, consts, names, outputs):
    outs = ("y",) if outputs == 1 else tuple(f"y{i}" for i in range(outputs))
    model = node_model(op, inputs, outs, attrs, 19 if op == "Resize" else 21, consts, names)
    check_compiled(model, inputs, rtol=1e-4, atol=1e-5)


def test_fused_feed_forward():
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Gelu", ["hb"], ["g"]), helper.make_node("MatMul", ["g", "w2"], ["o"]),
             helper.make_node("Add", ["o", "x"], ["r"]),
             helper.make_node("LayerNormalization", ["r", "s", "b"], ["y"])]
    inputs = {"x": f(10, 32)}
    weights = {"w1": f(32, 64), "b1": f(64), "w2": f(64, 32) / 8, "s": f(32), "b": f(32)}
    check_compiled(graph_model(nodes, inputs, ["y"], weights), inputs, rtol=1e-4, atol=1e-4)


def test_fused_attention():
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Mul", ["s", "scale"], ["ss"]),
             helper.make_node("Add", ["ss", "mask"], ["sm"]), helper.make_node("Softmax", ["sm"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["y"])]
    inputs = {"q": f(1, 2, 7, 16), "kt": f(1, 2, 16, 7), "v": f(1, 2, 7, 16), "mask": f(1, 1, 1, 7)}
    check_compiled(graph_model(nodes, inputs, ["y"], {"scale": np.array(0.25, np.float32)}), inputs)


def test_fused_conv_block():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["m"], ["g"]), helper.make_node("Flatten", ["g"], ["fl"]),
             helper.make_node("Gemm", ["fl", "fw", "fb"], ["y"], transB=1)]
    inputs = {"x": f(1, 3, 12, 12)}
    weights = {"w": f(24, 3, 3, 3), "b": f(24), "fw": f(10, 24), "fb": f(10)}
    check_compiled(graph_model(nodes, inputs, ["y"], weights), inputs, rtol=1e-4, atol=1e-4)
