import numpy as np

from tests.onnx_util import check_node


def test_add_broadcast(rng):
    check_node(
        "Add", {"a": rng.standard_normal((2, 3)).astype(np.float32), "b": rng.standard_normal(3).astype(np.float32)}
    )


def test_relu(rng):
    check_node("Relu", {"x": rng.standard_normal((4, 5)).astype(np.float32)})
