"""Structurally invalid models are refused before conversion, each error naming
the offending value, node or graph (frontend/onnx/validate.py, reader.py)."""

import numpy as np
import onnx
import pytest
from aic.frontend.onnx import FrontendError, load_model
from onnx import TensorProto as T
from onnx import helper as h

F32 = np.float32


def vi(name, shape=(2,), elem=T.FLOAT):
    return h.make_tensor_value_info(name, elem, shape)


def model(nodes, inputs, outputs, initializers=(), opset=17, ir_version=8):
    graph = h.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], ir_version=ir_version)


def relu(x="x", y="y"):
    return h.make_node("Relu", [x], [y])


def load_error(m) -> str:
    with pytest.raises(FrontendError) as caught:
        load_model(m)
    assert caught.value.__cause__ is None
    return str(caught.value)


def test_value_defined_twice():
    m = model([relu(), h.make_node("Neg", ["x"], ["y"], name="neg")], [vi("x")], [vi("y")])
    assert "'y' is defined twice (an output of node 'neg' (Neg)" in load_error(m)


def test_node_output_redefines_an_input():
    assert "'x' is defined twice" in load_error(model([relu("x", "x")], [vi("x")], [vi("x")]))


def test_graph_input_listed_twice():
    assert load_error(model([relu()], [vi("x"), vi("x")], [vi("y")])) == "graph 'g': input 'x' is listed twice"


def test_two_initializers_with_one_name():
    c1, c2 = (onnx.numpy_helper.from_array(np.full(2, k, F32), "c") for k in (1, 2))
    m = model([h.make_node("Add", ["x", "c"], ["y"])], [vi("x")], [vi("y")], [c1, c2])
    assert load_error(m) == "graph 'g': two initializers are named 'c'"


def test_initializer_conflicts_with_its_input():
    init = onnx.numpy_helper.from_array(np.ones(2, F32), "x")
    wrong_shape = model([relu()], [vi("x", [3])], [vi("y")], [init])
    assert "initializer 'x' has shape [2], but the graph input of that name is declared with shape [3]" in (
        load_error(wrong_shape)
    )
    wrong_type = model([relu()], [vi("x", [2], T.INT64)], [vi("y")], [init])
    assert "initializer 'x' is FLOAT, but the graph input of that name is declared INT64" in load_error(wrong_type)
    fine = model([relu()], [vi("x", ["n"])], [vi("y")], [init])  # a symbolic dim fits any size
    assert load_model(fine).outputs[0].type.shape == (2,)


def test_versions_beyond_onnx():
    assert f"ir_version 99 is newer than the newest this onnx {onnx.__version__} knows" in load_error(
        model([relu()], [vi("x")], [vi("y")], ir_version=99)
    )
    assert "imports ONNX opset 999" in load_error(model([relu()], [vi("x")], [vi("y")], opset=999))


def test_default_domain_imported_twice():
    m = model([relu()], [vi("x")], [vi("y")])
    m.opset_import.append(h.make_opsetid("ai.onnx", 11))
    assert load_error(m) == "model: imports domain 'ai.onnx' twice (opsets 17 and 11)"


def test_graph_without_outputs():
    assert load_error(model([relu()], [vi("x")], [])) == "model: graph 'g' has no outputs"


def test_node_arity_against_its_schema():
    no_outputs = model([h.make_node("Relu", ["x"], [], name="r"), relu()], [vi("x")], [vi("y")])
    assert "node 'r' (Relu, opset 17) has 0 outputs; the op takes 1" in load_error(no_outputs)
    branch = h.make_graph([h.make_node("Identity", ["x"], ["t"])], "b", [], [vi("t")])
    if_without_cond = model(
        [h.make_node("If", [], ["y"], then_branch=branch, else_branch=branch)], [vi("x")], [vi("y")]
    )
    assert "node 'If_0' (If, opset 17) has 0 inputs; the op takes 1" in load_error(if_without_cond)


def test_control_flow_bodies_match_their_node():
    body = h.make_graph(
        [h.make_node("Identity", ["cond"], ["cond_out"])],
        "body",
        [vi("i", [], T.INT64), vi("cond", [], T.BOOL), vi("v")],
        [vi("cond_out", [], T.BOOL)],
    )
    n = onnx.numpy_helper.from_array(np.array(3, np.int64), "n")
    loop = model([h.make_node("Loop", ["n", "", "x"], ["y"], body=body)], [vi("x")], [vi("y")], [n])
    assert "its body has 1 outputs; for the node's 1 outputs it needs 2" in load_error(loop)
    branch = h.make_graph([h.make_node("Identity", ["x"], ["t"])], "b", [], [vi("t")])
    two = h.make_node("If", ["c"], ["y", "z"], then_branch=branch, else_branch=branch)
    if_model = model([two], [vi("x"), vi("c", [], T.BOOL)], [vi("y"), vi("z")])
    assert "its then_branch gives 1 outputs, the node has 2" in load_error(if_model)


def test_subgraph_defects_name_their_body():
    branch = h.make_graph([relu("x", "t"), relu("x", "t")], "then", [], [vi("t")])
    m = model(
        [h.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)],
        [vi("x"), vi("c", [], T.BOOL)],
        [vi("y")],
    )
    assert "graph 'then' (body 'else_branch' of node 'If_0'): 't' is defined twice" in load_error(m)


def test_invalid_utf8_names(tmp_path):
    m = model([h.make_node("Relu", ["x"], ["y"], name="abc")], [vi("x")], [vi("y")])
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString().replace(b"abc", b"a\xffc"))
    message = load_error(path)
    assert "the name of node 0 is not valid UTF-8 text (b'a\\xffc'" in message


def test_tensor_data_not_matching_its_dims():
    c = h.make_tensor("c", T.FLOAT, [2], [1, 2])
    c.dims[0] = 3
    m = model([h.make_node("Add", ["x", "c"], ["y"])], [vi("x", [3])], [vi("y", [3])], [c])
    assert "tensor 'c' (FLOAT, dims [3]) cannot be read: its data does not match its element type and dims" in (
        load_error(m)
    )


def test_declared_output_type_must_be_the_computed_one():
    m = model([relu()], [vi("x")], [vi("y", [2], T.INT8)])
    assert load_error(m) == "graph 'g': output 'y' is declared INT8, but computed as float32 (f32[2])"


def test_negative_tensor_dims():
    c = onnx.numpy_helper.from_array(np.ones(2, F32), "c")
    c.dims[:] = [-2]
    m = model([h.make_node("Identity", ["c"], ["y"])], [], [vi("y")], [c])
    assert "tensor 'c' (FLOAT) has negative dims [-2]" in load_error(m)


def test_unknown_tensor_element_type():
    c = h.make_tensor("c", T.FLOAT, [2], [1, 2])
    c.data_type = 33
    m = model([h.make_node("Identity", ["c"], ["y"])], [], [vi("y")], [c])
    assert "tensor 'c' has an unknown element type (33)" in load_error(m)


def test_error_types_exported_by_aic():
    from aic.compiler.limits import SizeError

    import aic

    assert aic.FrontendError is FrontendError and aic.SizeError is SizeError
