"""ONNX function ops without an aic converter run through their function bodies;
If with a condition known at compile time becomes its taken branch."""

import numpy as np
import onnx
import pytest
from aic.frontend.onnx import FrontendError, load_model
from aic.frontend.onnx.converters import CONVERTERS
from aic.ir.ops import OPS
from onnx import TensorProto as T
from onnx import helper as h

from tests.onnx_util import assert_close, check_node, node_model, run_interpreter, run_ort

F32 = np.float32


def test_plain_function_body(rng):
    """HannWindow (opset 17) is a function of Range, Cos, Mul...: no aic op needed."""
    check_node("HannWindow", {}, {"periodic": 0}, opset=17, initializers={"n": np.array(10, np.int64)}, rtol=1e-5)
    graph = load_model(node_model("HannWindow", {}, opset=17, initializers={"n": np.array(10, np.int64)}))
    assert "HannWindow" not in {n.op for n in graph.nodes}
    assert graph.outputs[0].name == "y"


def test_context_dependent_function_body(rng):
    """RMSNormalization (opset 23): its body is built for the node's input types and attributes."""
    x = rng.standard_normal((2, 3, 8)).astype(F32)
    scale = rng.uniform(0.5, 1.5, 8).astype(F32)
    check_node("RMSNormalization", {"x": x}, {"epsilon": 1e-3}, opset=23, initializers={"scale": scale}, rtol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_function_with_optional_input(rng, reduction):
    scores = rng.standard_normal((3, 5)).astype(F32)
    inits = {"labels": np.array([1, 0, 4], np.int64), "weights": rng.uniform(0.5, 1.5, 5).astype(F32)}
    check_node("NegativeLogLikelihoodLoss", {"scores": scores}, {"reduction": reduction}, opset=22, initializers=inits)


def test_function_body_with_unsupported_op_is_listed(monkeypatch):
    """A function op whose body uses an op aic lacks is itself unsupported (listed up front)."""
    for op in ("DynamicQuantizeLinear", "QuantizeLinear"):  # aic converts both: take them away
        monkeypatch.delitem(CONVERTERS, op)
    monkeypatch.delitem(OPS, "DynamicQuantizeLinear")  # an aic op too: converted directly otherwise
    model = node_model("DynamicQuantizeLinear", {"x": np.zeros(4, F32)}, outputs=("y", "s", "z"), opset=11)
    with pytest.raises(FrontendError, match=r"1 unsupported op in model .*DynamicQuantizeLinear x1"):
        load_model(model)


def branch(op: str, out: str) -> onnx.GraphProto:
    return h.make_graph([h.make_node(op, ["x"], [out])], out, [], [h.make_tensor_value_info(out, T.FLOAT, None)])


def if_on_shape(op_else: str) -> onnx.ModelProto:
    """cond = (Shape(x)[0] == 2): known from x's static shape."""
    nodes = [
        h.make_node("Shape", ["x"], ["shape"]),
        h.make_node("Constant", [], ["zero"], value_ints=[0]),
        h.make_node("Gather", ["shape", "zero"], ["n"]),
        h.make_node("Constant", [], ["two"], value_ints=[2]),
        h.make_node("Equal", ["n", "two"], ["cond"]),
        h.make_node("If", ["cond"], ["y"], then_branch=branch("Relu", "t"), else_branch=branch(op_else, "e")),
    ]
    x = h.make_tensor_value_info("x", T.FLOAT, [2, 3])
    model = h.make_model(h.make_graph(nodes, "g", [x], [h.make_tensor_value_info("y", T.FLOAT, None)]))
    model.opset_import[0].version = 17
    model.ir_version = 8
    return model


def test_if_with_known_condition_is_its_taken_branch(rng):
    model = if_on_shape("Neg")
    graph = load_model(model)
    assert "If" not in {n.op for n in graph.walk()} and "Neg" not in {n.op for n in graph.walk()}
    assert graph.outputs[0].name == "y"
    x = rng.standard_normal((2, 3)).astype(F32)
    assert_close(run_interpreter(model, {"x": x})[0], run_ort(model, {"x": x})[0])


def test_untaken_branch_is_not_converted(rng):
    """The else branch here would fail to convert (a 2-D input to a 1-D-only op)."""
    model = if_on_shape("HannWindow")
    x = rng.standard_normal((2, 3)).astype(F32)
    assert_close(run_interpreter(model, {"x": x})[0], np.maximum(x, 0))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "n"
    with pytest.raises(FrontendError, match="HannWindow"):
        load_model(model)
