"""Dead code, CSE and no-op removal: expected graphs, numerics, names, idempotence."""

from __future__ import annotations

import numpy as np
from aic.compiler.passes.cse import eliminate_common_subexpressions
from aic.compiler.passes.dead_code import eliminate_dead_code
from aic.compiler.passes.noops import remove_noops
from aic.ir import DType, GraphBuilder, TensorType, run_graph, verify
from aic.ir.graph_edit import clone_graph

from .util import assert_idempotent, check_pass, ops

F32 = DType.float32


def f32(*shape) -> TensorType:
    return TensorType(F32, shape)


def test_dead_code_removes_unused_chains(rng):
    b = GraphBuilder()
    x = b.input("x", f32(2, 3))
    y = b.op("Relu", x)
    dead = b.op("Add", b.op("Relu", y), x)
    b.op("Relu", dead)
    after = check_pass(b.build([y]), eliminate_dead_code, rng)
    assert ops(after) == ["Relu"]
    assert [v.name for v in after.inputs] == ["x"]


def test_cse_merges_same_op_same_inputs_and_commuted(rng):
    b = GraphBuilder()
    x, y = b.input("x", f32(2, 3)), b.input("y", f32(2, 3))
    s1, s2, s3 = b.op("Add", x, y), b.op("Add", x, y), b.op("Add", y, x)
    out = b.op("Add", b.op("Add", s1, s2), s3)
    after = check_pass(b.build([out]), eliminate_common_subexpressions, rng)
    assert ops(after) == ["Add", "Add", "Add"]


def test_cse_compares_small_constants_by_value(rng):
    b = GraphBuilder()
    x = b.input("x", f32(4))
    half1, half2, other = b.const(np.float32(0.5)), b.const(np.float32(0.5)), b.const(np.float32(0.25))
    a1, a2, a3 = b.op("Mul", x, half1), b.op("Mul", x, half2), b.op("Mul", x, other)
    after = check_pass(b.build([b.op("Add", b.op("Add", a1, a2), a3)]), eliminate_common_subexpressions, rng)
    assert ops(after).count("Mul") == 2


def test_cse_of_two_outputs_keeps_both_names(rng):
    b = GraphBuilder()
    x = b.input("x", f32(3))
    y1 = b.node("Relu", [x], output_names=["y1"])[0]
    y2 = b.node("Relu", [x], output_names=["y2"])[0]
    after = check_pass(b.build([y1, y2]), eliminate_common_subexpressions, rng)
    assert sorted(ops(after)) == ["Identity", "Relu"]


def test_cse_merges_values_with_different_fresh_dims(rng):
    b = GraphBuilder()
    x, shape = b.input("x", f32(2, 6)), b.input("shape", TensorType(DType.int64, (2,)))
    r1, r2 = b.op("Reshape", x, shape), b.op("Reshape", x, shape)
    assert r1.type != r2.type  # each Reshape gets its own fresh dims
    graph = b.build([b.op("Relu", r2), b.op("Add", r1, r1)])
    after = eliminate_common_subexpressions(clone_graph(graph))
    verify(after)
    assert ops(after).count("Reshape") == 1
    feeds = {"x": rng.standard_normal((2, 6)).astype(np.float32), "shape": np.array([3, 4], np.int64)}
    for a, e in zip(run_graph(after, feeds), run_graph(graph, feeds)):
        np.testing.assert_array_equal(a, e)
    assert_idempotent(after, eliminate_common_subexpressions)


def _noop_graph(op: str, x_type: TensorType, *extra, **attrs):
    b = GraphBuilder()
    x = b.input("x", x_type)
    h = b.op("Relu", x)
    y = b.node(op, [h, *(b.const(e) if isinstance(e, np.ndarray) else e for e in extra)], attrs, output_names=["y"])
    return b.build([b.op("Relu", y[0])])


I64 = np.int64


def test_noops_removed(rng):
    t = f32("batch", 3, 4)
    cases = [
        ("Identity", ()),
        ("Dropout", ()),
        ("Cast", (), {"to": F32.onnx}),
        ("Reshape", (np.array([0, 3, 4], I64),)),
        ("Transpose", (), {"perm": [0, 1, 2]}),
        ("Expand", (np.array([1, 4], I64),)),
        ("Pad", (np.zeros(6, I64),)),
        ("Slice", (np.array([0], I64), np.array([2**40], I64), np.array([1], I64))),
        ("Concat", (), {"axis": 1}),
        ("Squeeze", ()),
        ("Unsqueeze", (np.zeros(0, I64),)),
        ("Tile", (np.ones(3, I64),)),
    ]
    for op, extra, *attrs in cases:
        graph = _noop_graph(op, t, *extra, **(attrs[0] if attrs else {}))
        after = check_pass(graph, remove_noops, rng)
        assert ops(after) == ["Relu", "Relu"], op
        assert after.outputs[0].type.shape == ("batch", 3, 4)


def test_noops_kept_when_they_do_something(rng):
    t = f32(2, 3, 4)
    cases = [
        ("Cast", (), {"to": DType.float64.onnx}),
        ("Reshape", (np.array([2, 12], I64),)),
        ("Transpose", (), {"perm": [0, 2, 1]}),
        ("Expand", (np.array([2, 2, 3, 4], I64),)),
        ("Pad", (np.array([0, 0, 1, 0, 0, 0], I64),)),
        ("Slice", (np.array([-1], I64), np.array([-(2**40)], I64), np.array([1], I64), np.array([-1], I64))),
        ("Tile", (np.array([1, 2, 1], I64),)),
    ]
    for op, extra, *attrs in cases:
        graph = _noop_graph(op, t, *extra, **(attrs[0] if attrs else {}))
        after = check_pass(graph, remove_noops, rng)
        assert op in ops(after), op


def test_slice_reversing_an_axis_is_kept(rng):
    graph = _noop_graph("Slice", f32(3, 4), *(np.array([v], I64) for v in (-1, -(2**40), 1, -1)))
    assert "Slice" in ops(check_pass(graph, remove_noops, rng))


def test_noop_output_keeps_its_name(rng):
    b = GraphBuilder()
    x = b.input("x", f32(3))
    h = b.op("Relu", x, name="h")
    y = b.node("Identity", [h], output_names=["y"])[0]
    z = b.node("Dropout", [h], output_names=["z"])[0]
    after = check_pass(b.build([y, b.op("Add", z, x)]), remove_noops, rng)
    assert ops(after) == ["Relu", "Add"]
    assert after.outputs[0].producer.op == "Relu"


def test_identity_of_a_graph_input_output_is_kept(rng):
    b = GraphBuilder()
    x = b.input("x", f32(3))
    y = b.node("Identity", [x], output_names=["y"])[0]
    after = check_pass(b.build([y, b.op("Relu", x)]), remove_noops, rng)
    assert ops(after) == ["Identity", "Relu"]


def test_dropout_with_used_mask_is_kept(rng):
    b = GraphBuilder()
    x = b.input("x", f32(3))
    y, mask = b.node("Dropout", [x], num_outputs=2)
    after = check_pass(b.build([y, mask]), remove_noops, rng)
    assert ops(after) == ["Dropout"]
