"""Reductions and global pools over trailing axes too short for partial lanes (7x7, 14x14 maps),
folded as one axis, compiled, against onnxruntime."""

import numpy as np
import pytest
from onnx import helper

from tests.lower.test_compiled_ops import check_compiled
from tests.onnx_util import graph_model

rng = np.random.default_rng(3)


def f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


CASES = [
    # op, input shape, axes (Reduce*), keepdims, SiLU before the reduction
    ("ReduceMean", (1, 5, 7, 7), [2, 3], 1, False),
    ("ReduceMean", (2, 3, 14, 14), [2, 3], 0, True),  # a fused producer
    ("ReduceMax", (2, 5, 6, 3), [1, 2, 3], 1, False),  # three trailing axes
    ("ReduceSum", (3, 4, 9), [1, 2], 0, False),
    ("ReduceMean", (1, 4, 5, 7), [2], 1, False),  # not trailing: the per-row path
    ("GlobalAveragePool", (1, 6, 7, 7), None, 1, True),
    ("GlobalMaxPool", (1, 3, 5, 10), None, 1, False),
]


@pytest.mark.parametrize(("op", "shape", "axes", "keepdims", "silu"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_reduce_trailing_axes(op, shape, axes, keepdims, silu):
    x = f(*shape)
    nodes, src, weights = [], "x", {}
    if silu:
        nodes += [helper.make_node("Sigmoid", ["x"], ["g"]), helper.make_node("Mul", ["x", "g"], ["s"])]
        src = "s"
    if axes is None:
        nodes.append(helper.make_node(op, [src], ["y"]))
    else:
        weights["axes"] = np.array(axes, np.int64)
        nodes.append(helper.make_node(op, [src, "axes"], ["y"], keepdims=keepdims))
    check_compiled(graph_model(nodes, {"x": x}, ["y"], weights), {"x": x}, rtol=1e-5, atol=1e-5)
