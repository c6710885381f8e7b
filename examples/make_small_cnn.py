"""Build the bundled example model examples/models/small_cnn.onnx (random weights, seed 0).

A small image classifier with the shape of a real one: Conv + BatchNormalization +
Relu, MaxPool, a depthwise Conv with Clip (ReLU6), a residual Add, global
average pooling, Flatten, Gemm and Softmax. Input `image`: float32[1, 3, 32, 32].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

OUT = Path(__file__).parent / "models" / "small_cnn.onnx"


def build(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}

    def w(name: str, *shape: int, scale: float = 0.2) -> str:
        weights[name] = (rng.standard_normal(shape) * scale).astype(np.float32)
        return name

    nodes = [
        helper.make_node("Conv", ["image", w("c1_w", 16, 3, 3, 3), w("c1_b", 16)], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization",
            ["c1", w("bn_s", 16), w("bn_b", 16), w("bn_m", 16), "bn_v"],
            ["bn"],
            epsilon=1e-5,
        ),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", w("dw_w", 16, 1, 3, 3), w("dw_b", 16)], ["dw"], pads=[1, 1, 1, 1], group=16),
        helper.make_node("Clip", ["dw", "zero", "six"], ["dw6"]),
        helper.make_node("Add", ["dw6", "p1"], ["res"]),
        helper.make_node("Conv", ["res", w("c2_w", 32, 16, 1, 1), w("c2_b", 32)], ["c2"]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", w("fc_w", 10, 32), w("fc_b", 10)], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    weights["bn_v"] = rng.uniform(0.5, 1.5, 16).astype(np.float32)
    weights["zero"] = np.array(0.0, np.float32)
    weights["six"] = np.array(6.0, np.float32)
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("probs", onnx.TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(a, n) for n, a in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="aic-example")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    OUT.parent.mkdir(exist_ok=True)
    onnx.save(build(), OUT)
    print(f"wrote {OUT}")
