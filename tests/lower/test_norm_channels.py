"""LayerNorm over the channels of a channels-first map read through a fused Transpose (ConvNeXt),
compiled, against onnxruntime: row tiles of whole vectors and a shorter one, epilogues, the
transpose kept apart when its output is read elsewhere."""

import numpy as np
import pytest
from onnx import helper

from tests.lower.test_compiled_ops import check_compiled
from tests.onnx_util import graph_model

rng = np.random.default_rng(5)


def f(*shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)


CASES = [
    # NCHW input shape, Transpose perm, a node after the LayerNorm, the transposed input also an output
    ((1, 12, 4, 16), [0, 2, 3, 1], None, False),  # rows of whole vectors
    ((2, 5, 3, 13), [0, 2, 3, 1], "Relu", False),  # a shorter last tile, an epilogue
    ((1, 7, 9, 8), [0, 2, 3, 1], "back", False),  # transposed back to NCHW afterwards
    ((1, 6, 10), [0, 2, 1], None, False),  # 1-D map
    ((1, 6, 5, 11), [0, 2, 3, 1], None, True),  # the transpose is stored: the per-position reduction
    ((1, 6, 5, 11), [0, 3, 2, 1], None, False),  # the contiguous axis is not the one before last
]


@pytest.mark.parametrize(("shape", "perm", "after", "shared"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_layer_norm_over_channels(shape, perm, after, shared):
    x = f(*shape)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=perm),
             helper.make_node("LayerNormalization", ["t", "s", "b"], ["n" if after else "y"], axis=-1, epsilon=1e-5)]
    if after == "Relu":
        nodes.append(helper.make_node("Relu", ["n"], ["y"]))
    elif after == "back":
        nodes.append(helper.make_node("Transpose", ["n"], ["y"], perm=[0, 3, 1, 2]))
    outputs = ["y", "t"] if shared else ["y"]
    model = graph_model(nodes, {"x": x}, outputs, {"s": f(shape[perm[-1]]), "b": f(shape[perm[-1]])})
    check_compiled(model, {"x": x}, rtol=1e-5, atol=1e-5)
