"""Fusion: which nodes share a kernel (checked by kernel count), refusals and their reasons, numerics kept."""

import logging

import numpy as np
import pytest
from aic.compiler.fusion import MAX_DEPTH, fuse
from aic.compiler.lower import LOWERINGS, Lowering, LoweringError
from aic.ir import DType, GraphBuilder, TensorType, run_graph
from aic.ir.loop import For, Prefetch
from aic.ir.loop_eval import run_program
from aic.ir.loop_printer import kernel_text
from aic.ir.loop_tools import stmts_of

from tests.lower.lower_util import lower
from tests.onnx_util import assert_close

rng = np.random.default_rng(4)
F32 = DType.float32


def f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def compiled(b: GraphBuilder, outputs, feeds):
    """Lower the graph, check it against the reference interpreter, return (groups, program)."""
    graph = b.build(outputs)
    program = lower(graph)
    for got, want in zip(run_program(program, feeds), run_graph(graph, feeds)):
        assert_close(got, want, 1e-5, 1e-5)
    return [g for g in fuse(graph) if not g.alias], program


def test_matmul_bias_relu_is_one_kernel():
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (7, 5)))
    y = b.op("Relu", b.op("Add", b.op("MatMul", x, b.const(f(5, 35))), b.const(f(35))))
    groups, program = compiled(b, [y], {"x": f(7, 5)})
    assert [g.describe() for g in groups] == ["MatMul+Add+Relu"]
    assert len(program.calls) == 1


def test_elementwise_chain_of_five_is_one_kernel():
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (3, 20)))
    y = x
    for op in ("Exp", "Neg", "Tanh", "Abs", "Sqrt"):
        y = b.op(op, y)
    groups, program = compiled(b, [y], {"x": f(3, 20)})
    assert len(groups) == 1 and len(program.calls) == 1


def test_long_chain_is_cut_at_the_depth_bound():
    """A chain longer than MAX_DEPTH becomes several kernels, so lowering never recurses too deep."""
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (8,)))
    y = x
    for i in range(2 * MAX_DEPTH + 10):
        y = b.op(("Neg", "Abs")[i % 2], y)
    groups = [g for g in fuse(b.build([y])) if not g.alias]
    assert [len(g.nodes) for g in groups] == [8, MAX_DEPTH + 1, MAX_DEPTH + 1]


def test_conv_residual_relu_is_one_kernel():
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (1, 4, 6, 6)))
    r = b.input("r", TensorType(F32, (1, 16, 6, 6)))
    y = b.op("Relu", b.op("Add", b.op("Conv", x, b.const(f(16, 4, 3, 3)), b.const(f(16)), pads=[1, 1, 1, 1]), r))
    groups, _ = compiled(b, [y], {"x": f(1, 4, 6, 6), "r": f(1, 16, 6, 6)})
    assert [g.describe() for g in groups] == ["Conv+Add+Relu"]


def test_residual_lines_are_prefetched_before_the_products():
    """A 1x1 convolution's tiles prefetch the lines of the residual their epilogue adds (one per 16 floats of
    each tile row) before the K loop, and the packed weights ahead of the K loop's reads inside it; never the
    input; results unchanged."""
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (1, 8, 8, 8)))
    r = b.input("r", TensorType(F32, (1, 12, 8, 8)))
    y = b.op("Relu", b.op("Add", b.op("Conv", x, b.const(f(12, 8, 1, 1)), b.const(f(12))), r))
    _, program = compiled(b, [y], {"x": f(1, 8, 8, 8), "r": f(1, 12, 8, 8)})
    (kernel,) = program.kernels
    residual = next(p for p in kernel.params if p.size == 12 * 64 and p.name.startswith("in"))
    packed = next(p for p in kernel.params if p.size == 12 * 8)  # 12 x 8 weights in two tiles of 6 channels
    fetched = {s.buffer.name for s in stmts_of(kernel.body) if isinstance(s, Prefetch)}
    assert fetched == {residual.name, packed.name}
    loops = [s for s in stmts_of(kernel.body) if isinstance(s, For)]
    in_k_loops = {s.buffer.name for loop in loops if loop.var.name.startswith("k")
                  for s in stmts_of(loop.body) if isinstance(s, Prefetch)}
    assert in_k_loops == {packed.name}


def test_layernorm_takes_the_residual_add_as_prologue():
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 40)))
    r = b.input("r", TensorType(F32, (2, 40)))
    y = b.op("LayerNormalization", b.op("Add", x, r), b.const(f(40)), b.const(f(40)))
    groups, _ = compiled(b, [y], {"x": f(2, 40), "r": f(2, 40)})
    assert [g.describe() for g in groups] == ["Add+LayerNormalization"]


def test_softmax_takes_scale_and_mask():
    b = GraphBuilder()
    s = b.input("s", TensorType(F32, (2, 3, 5, 5)))
    m = b.input("m", TensorType(F32, (1, 1, 1, 5)))
    y = b.op("Softmax", b.op("Add", b.op("Mul", s, b.const(np.float32(0.125))), m), axis=-1)
    groups, _ = compiled(b, [y], {"s": f(2, 3, 5, 5), "m": f(1, 1, 1, 5)})
    assert [g.describe() for g in groups] == ["Mul+Add+Softmax"]


def test_shared_value_is_computed_once_per_element():
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (3, 8)))
    t = b.op("Tanh", x)
    y = b.op("Mul", t, b.op("Sigmoid", t))  # t read twice
    groups, program = compiled(b, [y], {"x": f(3, 8)})
    assert len(groups) == 1
    assert kernel_text(program.kernels[0]).count("tanh(") == 1


def test_refusals_are_logged_with_reasons(caplog):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (4, 6)))
    e = b.op("Exp", x)
    y = b.op("Add", b.op("MatMul", e, b.const(f(6, 3))), b.const(f(3)))
    z = b.op("Neg", b.op("Sin", x))
    w = b.op("Cos", z)  # z is a graph output and also read by Cos
    with caplog.at_level(logging.DEBUG, logger="aic.fusion"):
        groups, _ = compiled(b, [y, z, w], {"x": f(4, 6)})
    assert sorted(g.describe() for g in groups) == ["Cos", "Exp", "MatMul+Add", "Sin+Neg"]
    messages = [r.message for r in caplog.records]
    assert any(m.startswith("Exp") and "needs them materialized" in m for m in messages)
    assert any(m.startswith("Neg") and "is a graph output" in m for m in messages)


def test_views_split_kernels_without_copies():
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 3, 4)))
    r = b.op("Reshape", b.op("Relu", x), b.const(np.array([6, 4], np.int64)))
    y = b.op("Exp", r)
    groups, program = compiled(b, [y], {"x": f(2, 3, 4)})
    assert [g.describe() for g in groups] == ["Relu", "Exp"]
    first, second = program.calls
    assert first.args[-1] is second.args[0]  # Exp reads the bytes Relu wrote


def test_broadcast_producer_is_not_recomputed():
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (4, 1)))
    y = b.input("y", TensorType(F32, (4, 16)))
    z = b.op("Add", b.op("Exp", x), y)  # Exp would run 16 times per element if inlined
    groups, _ = compiled(b, [z], {"x": f(4, 1), "y": f(4, 16)})
    assert sorted(g.describe() for g in groups) == ["Add", "Exp"]


def test_unsupported_ops_are_listed_together(monkeypatch):
    monkeypatch.setitem(LOWERINGS, "Erf", Lowering("refused", reason="refused for this test"))
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (4,)))
    y = b.op("Erf", b.op("Erf", b.op("Relu", x)))
    with pytest.raises(LoweringError, match=r"Erf x2 \(e.g. node '.*'\): refused for this test"):
        fuse(b.build([y]))


def test_concat_with_elementwise_tail_runs_one_loop_nest_per_input():
    """DenseNet's Concat + BatchNorm + ReLU: each input's slab is its own loop nest reading that input alone, not a
    choice among all the inputs at every element."""
    b = GraphBuilder()
    widths = (3, 5, 2, 4, 6)
    parts = [b.input(f"x{i}", TensorType(F32, (1, w, 3, 4))) for i, w in enumerate(widths)]
    channels = sum(widths)
    y = b.op("Concat", *parts, axis=1)
    y = b.op("Relu", b.op("Add", b.op("Mul", y, b.const(f(channels, 1, 1))), b.const(f(channels, 1, 1))))
    feeds = {f"x{i}": f(1, w, 3, 4) for i, w in enumerate(widths)}
    groups, program = compiled(b, [y], feeds)
    assert [g.describe() for g in groups] == ["Concat+Mul+Add+Relu"]
    text = kernel_text(program.kernels[0])
    nests = [line for line in text.splitlines() if line.startswith("  for ")]
    assert len(nests) == len(widths)
    assert text.count("select(") == len(widths)  # the ReLU of each slab; no choice among the inputs
