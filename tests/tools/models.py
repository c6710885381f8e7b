"""Small ONNX models for the tool tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def mlp(seed: int = 0, perturb_second: float = 0.0) -> onnx.ModelProto:
    """y = relu(relu(x @ W1 + b) @ W2) @ W3 on x: float32[4, 32]. The second layer's weight
    is a copy of the first's; `perturb_second` adds that much to one of its columns, which
    onnxruntime sees in the model and aic does not when the test swaps it in only for one engine."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((32, 32)).astype(np.float32) / 6
    w2 = w1.copy()
    w2[:, 5] += perturb_second
    w3 = rng.standard_normal((32, 8)).astype(np.float32) / 6
    b = rng.standard_normal(32).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h1"], name="fc1"),
        helper.make_node("Add", ["h1", "b"], ["a1"], name="bias1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "W2"], ["h2"], name="fc2"),
        helper.make_node("Relu", ["h2"], ["r2"], name="relu2"),
        helper.make_node("MatMul", ["r2", "W3"], ["y"], name="fc3"),
    ]
    weights = [numpy_helper.from_array(a, n) for n, a in (("W1", w1), ("W2", w2), ("W3", w3), ("b", b))]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def embedding(vocab: int = 50) -> onnx.ModelProto:
    """y = LayerNorm-free mean of Gather(table, ids) along the sequence: ids int64[2, 6] < vocab."""
    rng = np.random.default_rng(1)
    table = rng.standard_normal((vocab, 16)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["e"], name="embed"),
        helper.make_node("ReduceMean", ["e", "axes"], ["y"], name="mean", keepdims=0),
    ]
    weights = [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([1], np.int64), "axes")]
    graph = helper.make_graph(
        nodes,
        "embedding",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 16])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def layernorm_mlp(gamma_shift: float = 0.0) -> onnx.ModelProto:
    """MatMul, then LayerNorm spelled out in primitives (which -O2 fuses into one node), then MatMul.
    `gamma_shift` is added to the LayerNorm scale."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((16, 16)).astype(np.float32) / 4
    gamma = (np.ones(16) + gamma_shift).astype(np.float32)
    beta = np.zeros(16, np.float32)
    const = {"w": w, "gamma": gamma, "beta": beta, "eps": np.array(1e-5, np.float32),
             "two": np.array(2.0, np.float32), "axes": np.array([-1], np.int64)}  # fmt: skip
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="fc1"),
        helper.make_node("ReduceMean", ["h", "axes"], ["mu"], name="mean"),
        helper.make_node("Sub", ["h", "mu"], ["d"], name="center"),
        helper.make_node("Pow", ["d", "two"], ["d2"], name="square"),
        helper.make_node("ReduceMean", ["d2", "axes"], ["var"], name="variance"),
        helper.make_node("Add", ["var", "eps"], ["ve"], name="add_eps"),
        helper.make_node("Sqrt", ["ve"], ["sd"], name="std"),
        helper.make_node("Div", ["d", "sd"], ["n"], name="normalize"),
        helper.make_node("Mul", ["n", "gamma"], ["s"], name="scale"),
        helper.make_node("Add", ["s", "beta"], ["ln"], name="shift"),
        helper.make_node("MatMul", ["ln", "w"], ["y"], name="fc2"),
    ]
    graph = helper.make_graph(
        nodes,
        "layernorm_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])],
        [numpy_helper.from_array(a, n) for n, a in const.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model
