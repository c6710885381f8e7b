"""Memory planning: arena reuse by liveness, no overlap of live buffers, views, outputs written in place."""

import numpy as np
from aic.compiler.memory import ALIGN, ArenaPlan, Lifetime, check_plan, plan_arena
from aic.ir import DType, GraphBuilder, TensorType, run_graph
from aic.ir.loop import Program
from aic.ir.loop_eval import run_program

from tests.lower.lower_util import lower
from tests.onnx_util import assert_close

rng = np.random.default_rng(5)
F32 = DType.float32


def f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def lifetimes(program: Program) -> list[Lifetime]:
    """Arena buffers of a program with the calls that touch them."""
    spans: dict[int, Lifetime] = {}
    for step, call in enumerate(program.calls):
        for b in call.args:
            if b.kind == "arena":
                nbytes = int(np.prod(b.shape)) * b.dtype.itemsize
                lt = spans.setdefault(id(b), Lifetime(b, nbytes, step, step))
                lt.last = step
    return list(spans.values())


def test_plan_reuses_bytes_of_dead_buffers():
    lts = [Lifetime("a", 100, 0, 1), Lifetime("b", 100, 1, 2), Lifetime("c", 100, 2, 3), Lifetime("d", 30, 3, 3)]
    plan = plan_arena(lts)
    check_plan(lts, plan)
    assert plan.offsets["a"] == plan.offsets["c"]  # a is dead when c is born
    assert plan.peak_bytes == 2 * 128 < plan.total_bytes
    assert all(o % ALIGN == 0 for o in plan.offsets.values())


def test_program_arena_is_smaller_than_the_sum_and_never_overlaps():
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (8, 16)))
    y = x
    for i in range(5):  # an MLP: each layer's input dies after the layer
        y = b.op("Relu", b.op("Add", b.op("MatMul", y, b.const(f(16, 16))), b.const(f(16))))
        y = b.op("Softmax", y) if i % 2 else b.op("Exp", b.op("Neg", y))
    graph = b.build([y])
    program = lower(graph)
    lts = lifetimes(program)
    plan_offsets = {lt.key: lt.key.offset for lt in lts}
    peak = program.arena_bytes
    assert peak < sum(-(-lt.nbytes // ALIGN) * ALIGN for lt in lts)
    check_plan(lts, ArenaPlan(plan_offsets, peak))
    feeds = {"x": f(8, 16)}
    assert_close(run_program(program, feeds)[0], run_graph(graph, feeds)[0], 1e-5, 1e-5)


def test_views_share_bytes_and_outputs_are_written_in_place():
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 6)))
    r = b.op("Relu", x)
    flat = b.op("Flatten", b.op("Unsqueeze", r, b.const(np.array([0], np.int64))), axis=0)
    y = b.op("Exp", b.op("Reshape", r, b.const(np.array([3, 4], np.int64))))
    program = lower(b.build([flat, y]))
    relu, exp = program.calls
    assert relu.args[-1] is program.outputs[0]  # Relu writes the graph output its view is
    assert exp.args[0] is program.outputs[0]  # and Exp reads it there
    assert program.arena_bytes == 0


def test_outputs_that_are_inputs_constants_or_repeated_are_copied():
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 3)))
    k = b.const(f(4))
    e = b.op("Exp", x)
    graph = b.build([x, k, e, e])
    program = lower(graph)
    assert len(program.calls) == 4  # Exp, and copies for x, k and the second e
    feeds = {"x": f(2, 3)}
    for got, want in zip(run_program(program, feeds), [feeds["x"], k.const, np.exp(feeds["x"]), np.exp(feeds["x"])]):
        assert_close(got, want, 1e-6, 1e-6)


def test_weights_are_aligned_in_one_blob():
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (3, 5)))
    y = b.op("MatMul", b.op("Add", x, b.const(f(5))), b.const(f(5, 7)))
    program = lower(b.build([y]))
    offsets = sorted(w.offset for w in program.weights)
    assert all(o % ALIGN == 0 for o in offsets) and len(set(offsets)) == len(offsets)
