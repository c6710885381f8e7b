"""Elementwise kernels reading a transposed operand (NHWC -> NCHW), run by tiles of row positions with
the channel axis inside, compiled, against onnxruntime: whole tiles, shorter last tiles, a scale
broadcast along channels, 3-D and 5-D, and operands that keep the default order."""

import numpy as np
import pytest
from onnx import helper

from tests.lower.test_compiled_ops import check_compiled
from tests.onnx_util import graph_model

rng = np.random.default_rng(7)


def f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


CASES = [
    # input shape, perm, what is applied to the input before the transpose / added after it
    ((1, 6, 40, 24), [0, 3, 1, 2], None),  # rows of whole tiles (2 x 16) and a tile of one vector
    ((2, 5, 13, 7), [0, 3, 1, 2], None),  # a tile of 8 and a shorter one of 5
    ((1, 4, 20, 3), [0, 3, 1, 2], "scale"),  # a per-channel scale broadcast along the row
    ((1, 12, 9), [0, 2, 1], None),  # [N, L, C] -> [N, C, L]
    ((1, 3, 4, 10, 5), [0, 4, 1, 2, 3], None),  # 5-D
    ((1, 6, 17, 8), [0, 3, 1, 2], "residual"),  # a contiguous operand too: the default order
]


@pytest.mark.parametrize(("shape", "perm", "extra"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_transposed_rows(shape, perm, extra):
    x = f(*shape)
    inputs, weights = {"x": x}, {}
    nodes = []
    src = "x"
    if extra == "scale":
        weights["g"] = f(shape[-1])
        nodes.append(helper.make_node("Mul", ["x", "g"], ["xs"]))
        src = "xs"
    nodes.append(helper.make_node("Transpose", [src], ["t" if extra == "residual" else "y"], perm=perm))
    if extra == "residual":
        inputs["r"] = f(*[shape[p] for p in perm])
        nodes.append(helper.make_node("Add", ["t", "r"], ["y"]))
    check_compiled(graph_model(nodes, inputs, ["y"], weights), inputs, rtol=0, atol=1e-6)
