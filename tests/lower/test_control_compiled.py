"""If, Loop and Scan compiled to native code (bodies lowered to kernels, branches and loops in
the entry function), run through aic.compile and compared with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from aic.codegen.llvm import build_module
from aic.codegen.target import Target
from aic.compiler.lower import LoweringError
from aic.compiler.program import build_program
from aic.frontend.onnx import load_model
from aic.ir.loop import IfStep, LoopStep
from aic.ir.loop_printer import program_text
from onnx import TensorProto, helper

import aic
from tests.onnx_util import assert_close, run_ort

F = TensorProto.FLOAT
I64 = TensorProto.INT64
B = TensorProto.BOOL
rng = np.random.default_rng(7)


def f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def vi(name: str, elem: int, shape: list[int] | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def node(op: str, ins: list[str], outs: list[str], **attrs) -> onnx.NodeProto:
    return helper.make_node(op, ins, outs, **attrs)


def model(nodes, inputs, outputs, inits=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "m", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def const(name: str, array: np.ndarray) -> onnx.NodeProto:
    return node("Constant", [], [name], value=helper.make_tensor(name, _elem(array), array.shape, array.ravel()))


def _elem(array: np.ndarray) -> int:
    return helper.np_dtype_to_tensor_dtype(array.dtype)


def check(m: onnx.ModelProto, *feed_sets: dict[str, np.ndarray], rtol: float = 1e-5, atol: float = 1e-6, static=True):
    """Compile once, run every feed set, compare each with onnxruntime; return the module."""
    module = aic.compile(m)
    assert isinstance(module, aic.Module) == static, "a static compile, not a specialising one, or the reverse"
    for feeds in feed_sets:
        for i, (a, e) in enumerate(zip(module.run(None, feeds), run_ort(m, feeds), strict=True)):
            assert_close(a, e, rtol, atol, f"output {i}")
    return module


def steps(m: onnx.ModelProto) -> str:
    return program_text(build_program(load_model(m)))


# ---------------------------------------------------------------- If


def _if_model() -> onnx.ModelProto:
    """y = x @ w + 1 when c, else relu(x) * 3 - x; z = x from one branch, w[0] from the other
    (graph input and outer-value results are copied); the branches read x and w from outside."""
    then = helper.make_graph(
        [node("MatMul", ["x", "w"], ["xw"]), node("Add", ["xw", "one"], ["t"]), node("Identity", ["x"], ["tz"])],
        "then",
        [],
        [vi("t", F, [4, 4]), vi("tz", F, [4, 4])],
        [helper.make_tensor("one", F, [], [1.0])],
    )
    other = helper.make_graph(
        [
            node("Relu", ["x"], ["r"]),
            node("Mul", ["r", "three"], ["r3"]),
            node("Sub", ["r3", "x"], ["e"]),
            node("Exp", ["w"], ["ez"]),
        ],
        "else",
        [],
        [vi("e", F, [4, 4]), vi("ez", F, [4, 4])],
        [helper.make_tensor("three", F, [], [3.0])],
    )
    return model(
        [
            node("Neg", ["x0"], ["x"]),
            node("If", ["c"], ["y", "z"], then_branch=then, else_branch=other),
            node("Add", ["y", "z"], ["s"]),
        ],
        [vi("c", B, []), vi("x0", F, [4, 4]), vi("w", F, [4, 4])],
        [vi("s", F, [4, 4]), vi("y", F, [4, 4])],
    )


def test_if_takes_either_branch_at_run_time():
    m = _if_model()
    x, w = f(4, 4), f(4, 4)
    check(
        m,
        {"c": np.array(True), "x0": x, "w": w},
        {"c": np.array(False), "x0": x, "w": w},
        {"c": np.array(True), "x0": f(4, 4), "w": w},
    )
    text = steps(m)
    assert "if c:" in text and "else:" in text


def test_entry_function_branches_on_the_flag():
    text = str(build_module(build_program(load_model(_if_model())), Target.parse("llvm")))
    entry = text[text.index('@"aic_entry"') :]
    assert 'load i8, ptr %"c"' in entry and "br i1" in entry
    assert entry.count('call void @"aic_k_') == 6  # Neg, two kernels per branch, the final Add


def test_if_with_different_branch_shapes_is_refused():
    then = helper.make_graph([node("Identity", ["x"], ["a"])], "then", [], [vi("a", F, [3])])
    other = helper.make_graph([node("Concat", ["x", "x"], ["b"], axis=0)], "else", [], [vi("b", F, [6])])
    m = model(
        [node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="pick")],
        [vi("c", B, []), vi("x", F, [3])],
        [vi("y", F, None)],
    )
    with pytest.raises(LoweringError, match=r"'pick' \(If\).*output 0 is f32\[3\] from then_branch but f32\[6\]"):
        build_program(load_model(m))


def test_if_on_a_constant_condition_keeps_the_taken_branch():
    then = helper.make_graph([node("Concat", ["x", "x"], ["a"], axis=0)], "then", [], [vi("a", F, [6])])
    other = helper.make_graph([node("Identity", ["x"], ["b"])], "else", [], [vi("b", F, [3])])
    m = model(
        [const("c", np.array(True)), node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
        [vi("x", F, [3])],
        [vi("y", F, [6])],
    )
    check(m, {"x": f(3)})
    assert "if " not in steps(m)


# ---------------------------------------------------------------- Loop


def test_loop_with_run_time_trip_count_and_condition():
    """Carried (a, b) swap roles each iteration (b' = a + b*x, a' = b), an outer intermediate
    (ex = exp(x)) is read by the body; the loop stops at the trip count or once sum(b) > limit."""
    body = helper.make_graph(
        [
            node("Mul", ["b_in", "ex"], ["bx"]),
            node("Add", ["a_in", "bx"], ["b_out"]),
            node("Identity", ["b_in"], ["a_out"]),
            node("ReduceSum", ["b_out"], ["total"], keepdims=0),
            node("Less", ["total", "limit"], ["go"]),
        ],
        "body",
        [vi("i", I64, []), vi("c_in", B, []), vi("a_in", F, [8]), vi("b_in", F, [8])],
        [vi("go", B, []), vi("a_out", F, [8]), vi("b_out", F, [8])],
    )
    m = model(
        [node("Exp", ["x"], ["ex"]), node("Loop", ["n", "c", "a", "b"], ["a_end", "b_end"], body=body)],
        [vi("n", I64, []), vi("c", B, []), vi("a", F, [8]), vi("b", F, [8]), vi("x", F, [8]), vi("limit", F, [])],
        [vi("a_end", F, [8]), vi("b_end", F, [8])],
    )
    a, b, x = np.abs(f(8)), np.abs(f(8)), f(8) * 0.1
    check(
        m,
        {"n": np.array(5), "c": np.array(True), "a": a, "b": b, "x": x, "limit": np.array(1e9, np.float32)},
        {"n": np.array(50), "c": np.array(True), "a": a, "b": b, "x": x, "limit": np.array(60.0, np.float32)},
        {"n": np.array(3), "c": np.array(False), "a": a, "b": b, "x": x, "limit": np.array(1e9, np.float32)},
        {"n": np.array(-1), "c": np.array(True), "a": a, "b": b, "x": x, "limit": np.array(1e9, np.float32)},
    )
    text = steps(m)
    assert "loop " in text and " < n while " in text


def test_loop_with_constant_trip_count_stacks_scan_outputs():
    """y' = y * 0.5 + i (the iteration number) + w; scan outputs: y' and (y' as [2, 3] transposed)."""
    body = helper.make_graph(
        [
            node("Cast", ["i"], ["fi"], to=F),
            node("Mul", ["y_in", "half"], ["h"]),
            node("Add", ["h", "fi"], ["hi"]),
            node("Add", ["hi", "w"], ["y_out"]),
            node("Reshape", ["y_out", "shape"], ["y2"]),
            node("Transpose", ["y2"], ["y2t"], perm=[1, 0]),
            node("Identity", ["c_in"], ["c_out"]),
            node("Identity", ["y_out"], ["y_scan"]),
        ],
        "body",
        [vi("i", I64, []), vi("c_in", B, []), vi("y_in", F, [6])],
        [vi("c_out", B, []), vi("y_out", F, [6]), vi("y_scan", F, [6]), vi("y2t", F, [3, 2])],
        [helper.make_tensor("half", F, [], [0.5]), helper.make_tensor("shape", I64, [2], [2, 3])],
    )
    m = model(
        [const("n", np.array(4)), node("Loop", ["n", "", "y"], ["y_end", "ys", "ts"], body=body)],
        [vi("y", F, [6]), vi("w", F, [6])],
        [vi("y_end", F, [6]), vi("ys", F, [4, 6]), vi("ts", F, [4, 3, 2])],
    )
    check(m, {"y": f(6), "w": f(6)}, {"y": f(6), "w": f(6)})
    program = build_program(load_model(m))
    loop = next(s for s in program.calls if isinstance(s, LoopStep))
    assert loop.trips == 4 and loop.cond is None  # the condition stays true: no flag to test


def test_loop_whose_carried_shape_changes_is_refused():
    body = helper.make_graph(
        [node("Concat", ["y_in", "y_in"], ["y_out"], axis=0), node("Identity", ["c_in"], ["c_out"])],
        "body",
        [vi("i", I64, []), vi("c_in", B, []), vi("y_in", F, None)],
        [vi("c_out", B, []), vi("y_out", F, None)],
    )
    m = model(
        [node("Loop", ["n", "", "y"], ["y_end"], body=body, name="grow")],
        [vi("n", I64, []), vi("y", F, [2])],
        [vi("y_end", F, None)],
    )
    with pytest.raises(LoweringError, match=r"'grow' \(Loop\).*(changes|not static)"):
        build_program(load_model(m))


def test_loop_of_changing_shapes_with_a_constant_trip_count_is_unrolled():
    """Slice(x, i, i + 1) along axis 1 has a size only known per iteration: the 3 iterations are
    unrolled (x and y are rank 2, so specialisation freezes nothing)."""
    body = helper.make_graph(
        [
            node("Unsqueeze", ["i", "zero"], ["start"]),
            node("Add", ["start", "one"], ["end"]),
            node("Slice", ["x", "start", "end", "one"], ["xi"]),
            node("Add", ["y_in", "xi"], ["y_out"]),
            node("Identity", ["y_out"], ["y_scan"]),
            node("Identity", ["c_in"], ["c_out"]),
        ],
        "body",
        [vi("i", I64, []), vi("c_in", B, []), vi("y_in", F, None)],
        [vi("c_out", B, []), vi("y_out", F, None), vi("y_scan", F, None)],
        [helper.make_tensor("zero", I64, [1], [0]), helper.make_tensor("one", I64, [1], [1])],
    )
    m = model(
        [node("Loop", ["n", "", "y"], ["y_end", "ys"], body=body)],
        [vi("y", F, [2, 1]), vi("x", F, [2, 5])],
        [vi("y_end", F, None), vi("ys", F, None)],
        [helper.make_tensor("n", I64, [], [3])],
    )
    check(m, {"y": f(2, 1), "x": f(2, 5)}, {"y": f(2, 1), "x": f(2, 5)}, static=False)
    from aic.compiler.specialize import specialize

    graph, frozen = specialize(load_model(m), {"y": f(2, 1), "x": f(2, 5)})
    assert not frozen and "loop " not in program_text(build_program(graph))


# ---------------------------------------------------------------- Scan


def test_scan_with_axes_and_reverse_directions():
    """State s' = s + u_t * v_t; u is scanned along axis 1 backwards, v along axis 0 forwards;
    outputs: s' stacked along axis 1 in reverse, and u_t forwards along axis 0."""
    body = helper.make_graph(
        [
            node("Mul", ["u_t", "v_t"], ["uv"]),
            node("Add", ["s_in", "uv"], ["s_out"]),
            node("Identity", ["s_out"], ["s_scan"]),
            node("Identity", ["u_t"], ["u_scan"]),
        ],
        "body",
        [vi("s_in", F, [3, 2]), vi("u_t", F, [3, 2]), vi("v_t", F, [3, 2])],
        [vi("s_out", F, [3, 2]), vi("s_scan", F, [3, 2]), vi("u_scan", F, [3, 2])],
    )
    m = model(
        [
            node(
                "Scan",
                ["s", "u", "v"],
                ["s_end", "ss", "us"],
                body=body,
                num_scan_inputs=2,
                scan_input_axes=[1, 0],
                scan_input_directions=[1, 0],
                scan_output_axes=[1, -3],
                scan_output_directions=[1, 0],
            )
        ],
        [vi("s", F, [3, 2]), vi("u", F, [3, 5, 2]), vi("v", F, [5, 3, 2])],
        [vi("s_end", F, [3, 2]), vi("ss", F, [3, 5, 2]), vi("us", F, [5, 3, 2])],
    )
    check(m, {"s": f(3, 2), "u": f(3, 5, 2), "v": f(5, 3, 2)})


def test_scan_states_that_swap_places():
    """States (p, q) -> (q, p) while scanning p + q * x_t; the swap is a cycle of copies that needs
    one temporary."""
    body = helper.make_graph(
        [
            node("Mul", ["q", "x_t"], ["qx"]),
            node("Add", ["p", "qx"], ["y_t"]),
            node("Identity", ["q"], ["p_out"]),
            node("Identity", ["p"], ["q_out"]),
        ],
        "body",
        [vi("p", F, [2]), vi("q", F, [2]), vi("x_t", F, [2])],
        [vi("p_out", F, [2]), vi("q_out", F, [2]), vi("y_t", F, [2])],
    )
    m = model(
        [node("Scan", ["p0", "q0", "x"], ["p_end", "q_end", "ys"], body=body, num_scan_inputs=1)],
        [vi("p0", F, [2]), vi("q0", F, [2]), vi("x", F, [5, 2])],
        [vi("p_end", F, [2]), vi("q_end", F, [2]), vi("ys", F, [5, 2])],
    )
    check(m, {"p0": f(2), "q0": f(2), "x": f(5, 2)})
    assert "_old" in steps(m)
    entry = str(build_module(build_program(load_model(m)), Target.parse("llvm")))
    assert 'icmp slt i64 %"i", 5' in entry  # the scan length bounds the loop


# ---------------------------------------------------------------- nesting


def test_nested_loop_if_and_scan_with_outer_reads():
    """A Loop whose body branches on the iteration's parity (then: a Scan summing the rows of m
    into the state; else: state * w), with m and w read from the enclosing graphs."""
    scan_body = helper.make_graph(
        [node("Add", ["acc", "row"], ["acc_out"])],
        "scan_body",
        [vi("acc", F, [4]), vi("row", F, [4])],
        [vi("acc_out", F, [4])],
    )
    then = helper.make_graph(
        [node("Scan", ["s_in", "m"], ["summed"], body=scan_body, num_scan_inputs=1)],
        "then",
        [],
        [vi("summed", F, [4])],
    )
    other = helper.make_graph([node("Mul", ["s_in", "w"], ["scaled"])], "else", [], [vi("scaled", F, [4])])
    body = helper.make_graph(
        [
            node("Mod", ["i", "two"], ["parity"]),
            node("Equal", ["parity", "zero"], ["even"]),
            node("If", ["even"], ["s_out"], then_branch=then, else_branch=other),
            node("Tanh", ["s_out"], ["s_act"]),
            node("Identity", ["c_in"], ["c_out"]),
        ],
        "body",
        [vi("i", I64, []), vi("c_in", B, []), vi("s_in", F, [4])],
        [vi("c_out", B, []), vi("s_act", F, [4]), vi("s_out", F, [4])],
        [helper.make_tensor("two", I64, [], [2]), helper.make_tensor("zero", I64, [], [0])],
    )
    m = model(
        [node("Sigmoid", ["m0"], ["m"]), node("Loop", ["n", "", "s"], ["s_end", "trace"], body=body)],
        [vi("s", F, [4]), vi("m0", F, [3, 4]), vi("w", F, [4])],
        [vi("s_end", F, [4]), vi("trace", F, None)],
        [helper.make_tensor("n", I64, [], [5])],
    )
    check(m, {"s": f(4), "m0": f(3, 4), "w": f(4)})
    text = steps(m)
    assert text.count("loop ") == 2 and "if " in text
    program = build_program(load_model(m))
    outer = next(s for s in program.calls if isinstance(s, LoopStep))
    assert any(isinstance(s, IfStep) for s in outer.body)


def test_scan_inside_a_loop_writes_rows_of_rows():
    """A Loop stacks the running sums a nested Scan stacks: the Scan writes row j of row i in place;
    its second input is scanned backwards along axis 1 (a strided slice, copied per iteration)."""
    scan_body = helper.make_graph(
        [
            node("Add", ["acc", "row"], ["a1"]),
            node("Mul", ["a1", "col"], ["acc_out"]),
            node("Identity", ["acc_out"], ["acc_seen"]),
        ],
        "scan_body",
        [vi("acc", F, [4]), vi("row", F, [4]), vi("col", F, [4])],
        [vi("acc_out", F, [4]), vi("acc_seen", F, [4])],
    )
    body = helper.make_graph(
        [
            node(
                "Scan",
                ["s_in", "m", "k"],
                ["s_out", "sums"],
                body=scan_body,
                num_scan_inputs=2,
                scan_input_axes=[0, 1],
                scan_input_directions=[0, 1],
            ),
            node("Identity", ["c_in"], ["c_out"]),
        ],
        "body",
        [vi("i", I64, []), vi("c_in", B, []), vi("s_in", F, [4])],
        [vi("c_out", B, []), vi("s_out", F, [4]), vi("sums", F, [3, 4])],
    )
    m = model(
        [node("Loop", ["n", "", "s"], ["s_end", "all_sums"], body=body)],
        [vi("s", F, [4]), vi("m", F, [3, 4]), vi("k", F, [4, 3])],
        [vi("s_end", F, [4]), vi("all_sums", F, [2, 3, 4])],
        [helper.make_tensor("n", I64, [], [2])],
    )
    check(m, {"s": f(4), "m": f(3, 4), "k": f(4, 3)})
    assert "all_sums_row_row" in steps(m)
