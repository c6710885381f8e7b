"""Small valid ONNX models that the fuzzer mutates: one or a few nodes each, covering
elementwise, contraction, convolution, movement, indexing, reduction and control flow."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx.numpy_helper import from_array

F = T.FLOAT


def vi(name: str, shape, elem: int = F) -> onnx.ValueInfoProto:
    return h.make_tensor_value_info(name, elem, shape)


def const(name: str, values, dtype=np.float32) -> onnx.TensorProto:
    return from_array(np.asarray(values, dtype=dtype), name)


def model(nodes, inputs, outputs, inits=(), opset: int = 17) -> onnx.ModelProto:
    graph = h.make_graph(nodes, "fuzz", inputs, outputs, initializer=list(inits))
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], ir_version=8)


def _elementwise():
    nodes = [
        h.make_node("Add", ["x", "c"], ["t"]),
        h.make_node("Relu", ["t"], ["u"]),
        h.make_node("Mul", ["u", "x"], ["y"]),
    ]
    return model(nodes, [vi("x", [2, 3])], [vi("y", [2, 3])], [const("c", [0.5, -1, 2])])


def _matmul():
    nodes = [h.make_node("MatMul", ["x", "w"], ["t"]), h.make_node("Add", ["t", "b"], ["y"])]
    w = const("w", np.linspace(-1, 1, 12).reshape(4, 3))
    return model(nodes, [vi("x", [2, 4])], [vi("y", [2, 3])], [w, const("b", [1, 2, 3])])


def _gemm():
    node = h.make_node("Gemm", ["a", "b", "c"], ["y"], alpha=0.5, beta=2.0, transB=1)
    return model([node], [vi("a", [3, 4]), vi("b", [2, 4])], [vi("y", [3, 2])], [const("c", [1, -1])])


def _conv():
    w = const("w", np.linspace(-1, 1, 54).reshape(3, 2, 3, 3))
    node = h.make_node("Conv", ["x", "w"], ["t"], pads=[1, 1, 1, 1], strides=[1, 1], kernel_shape=[3, 3])
    pool = h.make_node("MaxPool", ["t"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    return model([node, pool], [vi("x", [1, 2, 6, 6])], [vi("y", [1, 3, 3, 3])], [w])


def _reshape_transpose():
    nodes = [h.make_node("Reshape", ["x", "s"], ["t"]), h.make_node("Transpose", ["t"], ["y"], perm=[1, 0])]
    return model(nodes, [vi("x", [2, 6])], [vi("y", [4, 3])], [const("s", [3, 4], np.int64)])


def _gather():
    node = h.make_node("Gather", ["x", "i"], ["y"], axis=0)
    return model([node], [vi("x", [5, 3])], [vi("y", [2, 3])], [const("i", [4, 1], np.int64)])


def _concat_split():
    nodes = [
        h.make_node("Concat", ["a", "b"], ["t"], axis=1),
        h.make_node("Split", ["t", "s"], ["y", "z"], axis=1),
    ]
    inputs = [vi("a", [2, 3]), vi("b", [2, 2])]
    return model(nodes, inputs, [vi("y", [2, 1]), vi("z", [2, 4])], [const("s", [1, 4], np.int64)])


def _softmax_reduce():
    nodes = [
        h.make_node("Softmax", ["x"], ["t"], axis=-1),
        h.make_node("ReduceSum", ["t", "axes"], ["y"], keepdims=0),
    ]
    return model(nodes, [vi("x", [2, 3, 4])], [vi("y", [2, 4])], [const("axes", [1], np.int64)])


def _slice_pad():
    nodes = [
        h.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["t"]),
        h.make_node("Pad", ["t", "p"], ["y"], mode="constant"),
    ]
    inits = [
        const("st", [0, 1], np.int64),
        const("en", [4, 5], np.int64),
        const("ax", [0, 1], np.int64),
        const("sp", [2, 2], np.int64),
        const("p", [1, 0, 0, 1], np.int64),
    ]
    return model(nodes, [vi("x", [4, 5])], [vi("y", [3, 3])], inits)


def _cast_where():
    nodes = [
        h.make_node("Cast", ["x"], ["i"], to=T.INT32),
        h.make_node("Greater", ["x", "z"], ["m"]),
        h.make_node("Cast", ["i"], ["f"], to=F),
        h.make_node("Where", ["m", "f", "x"], ["y"]),
    ]
    return model(nodes, [vi("x", [3, 2])], [vi("y", [3, 2])], [const("z", [0.0])])


def _expand_tile():
    nodes = [h.make_node("Expand", ["x", "s"], ["t"]), h.make_node("Tile", ["t", "r"], ["y"])]
    inits = [const("s", [2, 3], np.int64), const("r", [1, 2], np.int64)]
    return model(nodes, [vi("x", [1, 3])], [vi("y", [2, 6])], inits)


def _if():
    then = h.make_graph([h.make_node("Neg", ["x"], ["t"])], "then", [], [vi("t", [2])])
    other = h.make_graph([h.make_node("Abs", ["x"], ["e"])], "else", [], [vi("e", [2])])
    node = h.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)
    return model([node], [vi("x", [2]), vi("c", [], T.BOOL)], [vi("y", [2])])


def _loop():
    """Ends after 3 iterations by its condition too, so no mutation of the trip count runs it for long."""
    body = h.make_graph(
        [
            h.make_node("Constant", [], ["limit"], value=const("limit", 2, np.int64)),
            h.make_node("Less", ["i", "limit"], ["cond_out"]),
            h.make_node("Add", ["v", "v"], ["v_out"]),
        ],
        "body",
        [vi("i", [], T.INT64), vi("cond", [], T.BOOL), vi("v", [2])],
        [vi("cond_out", [], T.BOOL), vi("v_out", [2])],
    )
    node = h.make_node("Loop", ["n", "", "x"], ["y"], body=body)
    return model([node], [vi("x", [2])], [vi("y", [2])], [const("n", 3, np.int64)])


def _topk_argmax():
    nodes = [
        h.make_node("TopK", ["x", "k"], ["v", "i"], axis=1),
        h.make_node("ArgMax", ["x"], ["y"], axis=1, keepdims=1),
    ]
    outputs = [vi("v", [2, 2]), vi("i", [2, 2], T.INT64), vi("y", [2, 1], T.INT64)]
    return model(nodes, [vi("x", [2, 5])], outputs, [const("k", [2], np.int64)])


def _layernorm():
    node = h.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-5)
    return model([node], [vi("x", [2, 4])], [vi("y", [2, 4])], [const("g", [1, 2, 3, 4]), const("b", [0, 0, 1, 1])])


SEEDS: dict[str, Callable[[], onnx.ModelProto]] = {
    f.__name__.strip("_"): f
    for f in (
        _elementwise,
        _matmul,
        _gemm,
        _conv,
        _reshape_transpose,
        _gather,
        _concat_split,
        _softmax_reduce,
        _slice_pad,
        _cast_where,
        _expand_tile,
        _if,
        _loop,
        _topk_argmax,
        _layernorm,
    )
}
