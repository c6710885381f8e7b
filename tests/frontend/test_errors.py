"""Frontend errors: one listing of every unsupported op, unreadable files, bad
attributes and shapes, each naming the node, op and input types."""

import numpy as np
import onnx
import pytest
from aic.frontend.onnx import FrontendError, load_model
from onnx import TensorProto as T
from onnx import helper as h

from tests.onnx_util import node_model

F32 = np.float32


def info(name, shape=(2, 3), elem=T.FLOAT):
    return h.make_tensor_value_info(name, elem, shape)


def load_error(model) -> str:
    with pytest.raises(FrontendError) as caught:
        load_model(model)
    assert caught.value.__cause__ is None, "no protobuf or numpy traceback behind the message"
    return str(caught.value)


def test_all_unsupported_ops_listed_at_once():
    """Counts, domain and first node per op, subgraphs scanned too, before anything is converted."""
    body = h.make_graph([h.make_node("FooBar", ["x"], ["t"], name="inner_foo")], "then", [], [info("t")])
    nodes = [
        h.make_node("FooBar", ["x"], ["a"], name="foo_0"),
        h.make_node("Relu", ["a"], ["b"]),
        h.make_node("FooBar", ["b"], ["c"], name="foo_1"),
        h.make_node("Attention", ["c"], ["d"], domain="com.microsoft", name="attn"),
        h.make_node("If", ["cond"], ["e"], then_branch=body, else_branch=body),
        h.make_node("Gelu", ["e"], ["y"], name="gelu"),
    ]
    graph = h.make_graph(nodes, "g", [info("x"), info("cond", (), T.BOOL)], [info("y")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.microsoft", 1)])
    message = load_error(model)
    assert message == (
        "3 unsupported ops in model (opset 17): "
        "FooBar x4 (domain '', first node 'foo_0'; not an ONNX op), "
        "com.microsoft:Attention x1 (domain 'com.microsoft' opset 1, first node 'attn'), "
        "Gelu x1 (domain '', first node 'gelu'; ONNX defines it from opset 20)"
    )


def test_old_form_without_converter_is_unsupported():
    """Scan-8 (with a batch axis) has no converter: unsupported at opset 8, fine from 9."""
    body = h.make_graph([h.make_node("Identity", ["s"], ["s2"])], "b", [info("s", [3])], [info("s2", [3])])
    attrs = {"body": body, "num_scan_inputs": 1}
    model = node_model("Scan", {"x": np.zeros((2, 3), F32)}, attrs=attrs, opset=8, input_names=["", "x"])
    assert "Scan x1 (domain '', first node 'Scan_0')" in load_error(model)


def test_missing_file(tmp_path):
    assert load_error(tmp_path / "nope.onnx") == f"{tmp_path / 'nope.onnx'}: no such model file"
    assert "not a file" in load_error(tmp_path)


@pytest.mark.parametrize("content", [b"", b"hello world, not a model\n", bytes(range(256)) * 3])
def test_not_an_onnx_file(tmp_path, content):
    path = tmp_path / "junk.onnx"
    path.write_bytes(content)
    assert "not an ONNX model" in load_error(path)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_file(tmp_path, keep):
    data = node_model("Relu", {"x": np.zeros((2, 3), F32)}, opset=17).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * keep)])
    message = load_error(path)
    assert str(path) in message and "truncated" in message


def test_truncated_after_the_graph(tmp_path):
    """Cut exactly where the opset imports begin: parses, but is incomplete."""
    model = node_model("Relu", {"x": np.zeros((2, 3), F32)}, opset=17)
    opsets = model.opset_import[0].SerializeToString()
    data = model.SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: data.rindex(opsets) - 2])
    assert "no opset imports; is the file truncated?" in load_error(path)


def test_unknown_attribute():
    model = node_model("Relu", {"x": np.zeros((2, 3), F32)}, attrs={"alpha": 0.1}, opset=17)
    message = load_error(model)
    assert message.startswith("node 'Relu_0' (Relu, opset 17) with inputs (x: f32[2,3]): ")
    assert "unknown attribute(s) ['alpha']" in message


def test_wrong_attribute_kind():
    model = node_model("Concat", {"x": np.zeros((2, 3), F32)}, attrs={"axis": 1.5}, opset=13)
    message = load_error(model)
    assert "node 'Concat_0' (Concat, opset 13) with inputs (x: f32[2,3])" in message
    assert message.endswith("attribute 'axis' must be INT, got FLOAT 1.5")


def test_missing_required_attribute():
    model = node_model("Concat", {"x": np.zeros((2, 3), F32)}, opset=13)
    assert "missing required attribute 'axis'" in load_error(model)


def test_missing_attribute_of_an_old_form():
    model = node_model("Unsqueeze", {"x": np.zeros((2, 3), F32)}, opset=11)
    assert load_error(model).endswith("missing required attribute 'axes' of Unsqueeze-11")


def test_unknown_attribute_of_an_old_form():
    model = node_model("Reshape", {"x": np.zeros((2, 3), F32)}, attrs={"shape": [3, 2], "shap": [1]}, opset=4)
    assert load_error(model) == (
        "node 'Reshape_0' (Reshape, opset 4) with inputs (x: f32[2,3]): "
        "unknown attribute(s) ['shap']; Reshape-1 takes ['consumed_inputs', 'shape']"
    )


def test_attribute_value_checked_by_the_aic_op():
    """The ONNX schema only knows 'mode' is a string; the aic op knows which ones it takes."""
    x = np.zeros((1, 1, 2, 2), F32)
    scales = {"scales": np.array([1, 1, 2, 2], F32)}
    model = node_model(
        "Resize", {"x": x}, attrs={"mode": "bicubic"}, opset=19, initializers=scales, input_names=["x", "", "scales"]
    )
    message = load_error(model)
    assert message.startswith("node 'Resize_0' (Resize, opset 19) with inputs (x: f32[1,1,2,2], -, scales: f32[4])")
    assert "attribute 'mode' is 'bicubic'; expected one of ['nearest', 'linear', 'cubic']" in message


def test_shape_error_names_node_op_and_shapes():
    model = node_model("Add", {"a": np.zeros((2, 3), F32), "b": np.zeros(4, F32)}, opset=17)
    message = load_error(model)
    assert message.startswith("node 'Add_0' (Add, opset 17) with inputs (a: f32[2,3], b: f32[4])")
    assert "do not broadcast" in message


def test_undefined_input():
    graph = h.make_graph([h.make_node("Relu", ["ghost"], ["y"], name="r")], "g", [info("x")], [info("y")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    assert load_error(model) == "node 'r' (Relu, opset 17): input 'ghost' is not defined"


def test_unsupported_element_type():
    graph = h.make_graph([h.make_node("Identity", ["x"], ["y"])], "g", [info("x", elem=T.STRING)], [info("y")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    assert load_error(model) == "graph input 'x': element type STRING is not supported"


def test_sequence_input():
    seq = h.make_tensor_sequence_value_info("s", T.FLOAT, None)
    graph = h.make_graph([h.make_node("Identity", ["s"], ["y"])], "g", [seq], [seq])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    assert load_error(model) == "graph input 's' is a sequence; aic supports tensors only"


def test_proto_that_is_not_a_model():
    assert "not an ONNX model" in load_error(onnx.ModelProto())
