"""If, Loop and Scan models built with onnx.helper: aic's interpreter vs onnxruntime."""

import numpy as np
import onnx
import pytest
from aic.compiler.summary import summarize
from aic.frontend.onnx import FrontendError, load_model
from aic.ir import print_graph
from onnx import TensorProto as T
from onnx import helper as h

from tests.onnx_util import assert_close, run_interpreter, run_ort

F32 = np.float32


def model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = h.make_graph(nodes, "m", inputs, outputs, list(initializers))
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    proto.ir_version = 8
    return proto


def info(name, elem=T.FLOAT, shape=None):
    return h.make_tensor_value_info(name, elem, shape)


def const(name, array):
    return h.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(np.asarray(array), name + "_t"))


def check(proto, feeds, rtol=1e-5):
    expected = run_ort(proto, feeds)
    actual = run_interpreter(proto, feeds)
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert_close(a, e, rtol=rtol, what=f"output {i}")
    return actual


def if_model(then_shape=(2, 3), else_shape=(2, 3)):
    """y = cond ? x * w : x - outer_bias (branches read outer values)."""
    then = h.make_graph([h.make_node("Mul", ["x", "w"], ["t"])], "then", [], [info("t", shape=then_shape)])
    other = h.make_graph([h.make_node("Sub", ["x", "bias"], ["e"])], "else", [], [info("e", shape=else_shape)])
    nodes = [
        h.make_node("Add", ["b", "b"], ["bias"]),
        h.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
    ]
    w = onnx.numpy_helper.from_array(np.full((2, 3), 3, F32), "w")
    return model(nodes, [info("c", T.BOOL, []), info("x", shape=[2, 3]), info("b", shape=[3])], [info("y")], [w])


@pytest.mark.parametrize("cond", [True, False])
def test_if_reads_outer_scope(rng, cond):
    feeds = {"c": np.array(cond), "x": rng.standard_normal((2, 3)).astype(F32), "b": rng.standard_normal(3).astype(F32)}
    check(if_model(), feeds)


def test_if_branches_with_different_shapes_get_a_symbol(rng):
    then = h.make_graph([h.make_node("Concat", ["x", "x"], ["t"], axis=0)], "then", [], [info("t")])
    other = h.make_graph([h.make_node("Identity", ["x"], ["e"])], "else", [], [info("e")])
    node = h.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)
    proto = model([node], [info("c", T.BOOL, []), info("x", shape=[2, 3])], [info("y")])
    graph = load_model(proto)
    dim0, dim1 = graph.outputs[0].type.shape
    assert isinstance(dim0, str) and dim1 == 3
    for cond in (True, False):
        check(proto, {"c": np.array(cond), "x": rng.standard_normal((2, 3)).astype(F32)})


def loop_body(limit: int | None = None):
    """(i, cond, acc) -> (cond', acc + x * i, scan = acc); cond' = i < limit when given."""
    nodes = [
        h.make_node("Cast", ["i"], ["fi"], to=T.FLOAT),
        h.make_node("Mul", ["x", "fi"], ["xi"]),
        h.make_node("Add", ["acc", "xi"], ["acc2"]),
        h.make_node("Identity", ["acc"], ["s"]),
    ]
    cond_out = "cond"
    if limit is not None:
        nodes += [const("lim", np.int64(limit)), h.make_node("Less", ["i", "lim"], ["c2"])]
        cond_out = "c2"
    inputs = [info("i", T.INT64, []), info("cond", T.BOOL, []), info("acc", shape=[3])]
    return h.make_graph(nodes, "body", inputs, [info(cond_out, T.BOOL, []), info("acc2"), info("s")])


def test_loop_for_with_scan_output(rng):
    node = h.make_node("Loop", ["n", "", "a0"], ["acc", "seq"], body=loop_body())
    proto = model(
        [const("n", np.int64(4)), node], [info("x", shape=[3]), info("a0", shape=[3])], [info("acc"), info("seq")]
    )
    graph = load_model(proto)
    assert graph.outputs[1].type.shape == (4, 3), "a constant trip count gives a static scan length"
    check(proto, {"x": rng.standard_normal(3).astype(F32), "a0": rng.standard_normal(3).astype(F32)})


@pytest.mark.parametrize("trips", [0, 2, 6])
def test_loop_while_condition_and_dynamic_trip_count(rng, trips):
    node = h.make_node("Loop", ["n", "c0", "a0"], ["acc", "seq"], body=loop_body(limit=3))
    inputs = [info("n", T.INT64, []), info("c0", T.BOOL, []), info("x", shape=[3]), info("a0", shape=[3])]
    proto = model([node], inputs, [info("acc"), info("seq")])
    assert isinstance(load_model(proto).outputs[1].type.shape[0], str)
    feeds = {"n": np.array(trips), "c0": np.array(True), "x": rng.standard_normal(3).astype(F32)}
    check(proto, {**feeds, "a0": rng.standard_normal(3).astype(F32)})


def test_loop_carried_value_that_grows():
    """A loop-carried tensor grows each iteration: its dim becomes a symbol."""
    body = h.make_graph(
        [h.make_node("Concat", ["v", "one"], ["v2"], axis=0)],
        "body",
        [info("i", T.INT64, [1]), info("cond", T.BOOL, [1]), info("v", shape=[None])],
        [info("cond", T.BOOL, [1]), info("v2", shape=[None])],
    )
    one = onnx.numpy_helper.from_array(np.ones(1, F32), "one")
    node = h.make_node("Loop", ["n", "", "v0"], ["v"], body=body)
    proto = model([const("n", np.int64(3)), node], [info("v0", shape=[2])], [info("v")], [one])
    graph = load_model(proto)
    assert isinstance(graph.outputs[0].type.shape[0], str)
    (out,) = check(proto, {"v0": np.zeros(2, F32)})
    assert out.shape == (5,)


def scan_model(directions=(0, 0), out_axis=0):
    """Running sum over rows of x (state) and per-step outputs state + y[t] * 2."""
    body = h.make_graph(
        [
            h.make_node("Add", ["s", "xt"], ["s2"]),
            h.make_node("Mul", ["yt", "two"], ["y2"]),
            h.make_node("Add", ["s2", "y2"], ["out"]),
        ],
        "body",
        [info("s", shape=[4]), info("xt", shape=[4]), info("yt", shape=[4])],
        [info("s2", shape=[4]), info("out", shape=[4])],
    )
    node = h.make_node(
        "Scan",
        ["s0", "x", "y"],
        ["s", "outs"],
        body=body,
        num_scan_inputs=2,
        scan_input_axes=[0, 1],
        scan_input_directions=list(directions),
        scan_output_axes=[out_axis],
        scan_output_directions=[directions[0]],
    )
    two = onnx.numpy_helper.from_array(np.full(4, 2, F32), "two")
    inputs = [info("s0", shape=[4]), info("x", shape=["T", 4]), info("y", shape=[4, "T"])]
    return model([node], inputs, [info("s"), info("outs")], [two])


@pytest.mark.parametrize(("directions", "out_axis"), [((0, 0), 0), ((1, 0), 1), ((0, 1), -1)])
def test_scan(rng, directions, out_axis):
    proto = scan_model(directions, out_axis)
    graph = load_model(proto)
    assert "T" in graph.outputs[1].type.shape
    feeds = {"s0": rng.standard_normal(4).astype(F32), "x": rng.standard_normal((5, 4)).astype(F32)}
    check(proto, {**feeds, "y": rng.standard_normal((4, 5)).astype(F32)})


def test_nested_control_flow_prints_and_reads_two_scopes(rng):
    """An If inside a Loop body reads a value of the main graph and one of the body."""
    then = h.make_graph([h.make_node("Add", ["acc", "x"], ["t"])], "then", [], [info("t")])
    other = h.make_graph([h.make_node("Sub", ["acc", "x"], ["e"])], "else", [], [info("e")])
    body = h.make_graph(
        [
            const("two", np.int64(2)),
            h.make_node("Mod", ["i", "two"], ["r"]),
            const("zero", np.int64(0)),
            h.make_node("Equal", ["r", "zero"], ["even"]),
            h.make_node("If", ["even"], ["acc2"], then_branch=then, else_branch=other),
        ],
        "body",
        [info("i", T.INT64, []), info("cond", T.BOOL, []), info("acc", shape=[3])],
        [info("cond", T.BOOL, []), info("acc2")],
    )
    node = h.make_node("Loop", ["n", "", "a0"], ["acc"], body=body)
    proto = model([const("n", np.int64(5)), node], [info("x", shape=[3]), info("a0", shape=[3])], [info("acc")])
    text = print_graph(load_model(proto))
    assert "Loop(" in text and "If(" in text and "then_branch:" in text
    check(proto, {"x": rng.standard_normal(3).astype(F32), "a0": rng.standard_normal(3).astype(F32)})


def test_sequence_types_are_refused():
    body = h.make_graph(
        [h.make_node("Identity", ["cond"], ["c2"])],
        "body",
        [info("i", T.INT64, []), info("cond", T.BOOL, []), h.make_tensor_sequence_value_info("seq", T.FLOAT, None)],
        [info("c2", T.BOOL, []), h.make_tensor_sequence_value_info("seq", T.FLOAT, None)],
    )
    nodes = [h.make_node("SequenceEmpty", [], ["s0"]), h.make_node("Loop", ["", "", "s0"], ["s"], body=body)]
    proto = model(nodes, [], [h.make_tensor_sequence_value_info("s", T.FLOAT, None)])
    with pytest.raises(FrontendError, match="SequenceEmpty x1"):
        load_model(proto)
    seq_input = model(
        [h.make_node("SequenceLength", ["s"], ["n"])],
        [h.make_tensor_sequence_value_info("s", T.FLOAT, None)],
        [info("n", T.INT64, [])],
    )
    with pytest.raises(FrontendError, match="SequenceLength"):
        load_model(seq_input)


def test_loop_trip_count_from_a_shape_keeps_the_symbol(rng):
    """M = Shape(x)[0] (a scalar): the scan output has "batch" rows; FLOPs count the body per iteration."""
    body = h.make_graph(
        [h.make_node("Add", ["acc", "w"], ["acc2"])],
        "body",
        [info("i", T.INT64, []), info("cond", T.BOOL, []), info("acc", shape=[3])],
        [info("cond", T.BOOL, []), info("acc2", shape=[3]), info("acc2", shape=[3])],
    )
    nodes = [
        h.make_node("Shape", ["x"], ["shape"]),
        const("zero", np.int64(0)),
        h.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        h.make_node("Loop", ["n", "", "a0"], ["acc", "seq"], body=body),
    ]
    w = onnx.numpy_helper.from_array(np.arange(3, dtype=F32), "w")
    proto = model(nodes, [info("x", shape=["batch", 2]), info("a0", shape=[3])], [info("acc"), info("seq")], [w])
    graph = load_model(proto)
    assert graph.outputs[1].type.shape == ("batch", 3)
    summary = summarize(graph, {"batch": 5})
    assert summary.flops == 5 * 3 and summary.ops["Loop"] == 1 and summary.ops["Add"] == 1
    check(proto, {"x": rng.standard_normal((5, 2)).astype(F32), "a0": rng.standard_normal(3).astype(F32)})
