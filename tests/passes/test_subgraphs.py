"""Passes inside If bodies, and outer values read by bodies: -O2 against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
from aic.compiler.passes import optimize
from aic.frontend.onnx import load_model
from aic.ir import run_graph
from onnx import TensorProto, helper, numpy_helper

from ..onnx_util import assert_close, run_ort
from .util import ops


def _const(name: str, value) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, np.float32)))


def if_model() -> onnx.ModelProto:
    """y = If(cond, then: Identity(x2 + (1 + 1)) with dead code, else: Relu(x2) * 1 + relu(x) twice),
    where x2 = Relu(x) is computed twice outside (CSE must update the bodies' reads)."""
    then = helper.make_graph(
        [
            _const("one", 1.0),
            helper.make_node("Add", ["one", "one"], ["two"]),
            helper.make_node("Add", ["x2a", "two"], ["t"]),
            helper.make_node("Exp", ["t"], ["unused"]),
            helper.make_node("Identity", ["t"], ["then_out"]),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, ["n", 4])],
    )
    orelse = helper.make_graph(
        [
            _const("one_e", 1.0),
            helper.make_node("Mul", ["x2b", "one_e"], ["m"]),
            helper.make_node("Add", ["m", "x2a"], ["else_out"]),
        ],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, ["n", 4])],
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["x2a"]),
        helper.make_node("Relu", ["x"], ["x2b"]),
        helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=orelse),
    ]
    graph = helper.make_graph(
        nodes,
        "if_model",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def test_if_bodies_are_optimized(rng):
    model = if_model()
    optimized, _ = optimize(load_model(model), 2, verify_each=True)
    assert ops(optimized) == ["Relu", "If", "Add", "Add"]  # one Relu; each body is a single Add
    for cond in (True, False):
        feeds = {"x": rng.standard_normal((3, 4)).astype(np.float32), "cond": np.array(cond)}
        (expected,) = run_ort(model, feeds)
        (actual,) = run_graph(optimized, feeds)
        assert_close(actual, expected)
