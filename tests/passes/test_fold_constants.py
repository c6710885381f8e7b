"""Constant folding: constant subgraphs, the size limit, shape arithmetic with symbolic dims."""

from __future__ import annotations

import numpy as np
from aic.compiler.passes.fold_constants import FOLD_LIMIT_BYTES, fold_constants
from aic.ir import DType, GraphBuilder, TensorType

from .util import check_pass, ops

F32, I64 = DType.float32, DType.int64


def test_constant_chain_folds(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 3)))
    c = b.op("Relu", b.op("Add", b.const(np.full((2, 3), -1, np.float32)), b.const(np.ones(3, np.float32))))
    after = check_pass(b.build([b.op("Add", x, c)]), fold_constants, rng)
    assert ops(after) == ["Add"]
    np.testing.assert_array_equal(after.nodes[0].inputs[1].const, np.zeros((2, 3), np.float32))


def test_folded_graph_output_is_a_named_constant(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2,)))
    y = b.node("Add", [b.const(np.ones(2, np.float32)), b.const(np.ones(2, np.float32))], output_names=["y"])[0]
    after = check_pass(b.build([b.op("Relu", x), y]), fold_constants, rng)
    assert after.outputs[1].is_const and after.outputs[1].name == "y"


def test_outputs_over_the_size_limit_are_not_folded(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (1, 1024)))
    rows = FOLD_LIMIT_BYTES // (4 * 1024) + 1
    big = b.op("Expand", b.const(np.float32(2)), b.const(np.array([rows, 1024], np.int64)))
    small = b.op("Expand", b.const(np.float32(3)), b.const(np.array([4, 1024], np.int64)))
    after = check_pass(b.build([b.op("Add", x, big), b.op("Add", x, small)]), fold_constants, rng)
    assert ops(after) == ["Expand", "Add", "Add"]


def test_transpose_of_a_large_weight_folds(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 600)))
    w = b.const(rng.standard_normal((600, 600)).astype(np.float32))
    after = check_pass(b.build([b.op("MatMul", x, b.op("Transpose", w, perm=[1, 0]))]), fold_constants, rng)
    assert ops(after) == ["MatMul"]


def _shape_arithmetic(x_type: TensorType):
    """Reshape x [b, 3, 4] to [b, 12] through Shape -> Gather -> Mul -> Unsqueeze -> Concat."""
    b = GraphBuilder()
    x = b.input("x", x_type)
    shape = b.op("Shape", x)
    batch = b.op("Gather", shape, b.const(np.array(0, np.int64)))
    dim1 = b.op("Gather", shape, b.const(np.array(1, np.int64)))
    inner = b.op("Mul", dim1, b.op("Gather", shape, b.const(np.array(2, np.int64))))
    axes = b.const(np.array([0], np.int64))
    target = b.op("Concat", b.op("Unsqueeze", batch, axes), b.op("Unsqueeze", inner, axes), axis=0)
    return b.build([b.op("Relu", b.op("Reshape", x, target))])


def test_static_shape_arithmetic_folds_completely(rng):
    after = check_pass(_shape_arithmetic(TensorType(F32, (2, 3, 4))), fold_constants, rng)
    assert ops(after) == ["Reshape", "Relu"]
    np.testing.assert_array_equal(after.nodes[0].inputs[1].const, [2, 12])


def test_symbolic_shape_arithmetic_folds_static_parts_only(rng):
    after = check_pass(_shape_arithmetic(TensorType(F32, ("batch", 3, 4))), fold_constants, rng)
    assert ops(after) == ["Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Relu"]
    assert after.outputs[0].type.shape == ("batch", 12)
    concat = next(n for n in after.nodes if n.op == "Concat")
    np.testing.assert_array_equal(concat.inputs[1].const, [12])


def test_folding_makes_downstream_shapes_static(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (12,)))
    shape = b.op("Mod", b.const(np.array([3, 4], np.int64)), b.const(np.array([100, 100], np.int64)))
    y = b.op("Reshape", x, shape)
    assert not y.type.is_static  # Mod has no symbolic propagation
    after = check_pass(b.build([b.op("Relu", y)]), fold_constants, rng)
    assert after.outputs[0].type.shape == (3, 4)


def test_concat_of_large_weights_folds(rng):
    """A bidirectional RNN's weights: Concat(forward, backward), each above the plain size limit."""
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 600)))
    rows = FOLD_LIMIT_BYTES // (4 * 600) + 1
    halves = [b.const(rng.standard_normal((600, rows)).astype(np.float32)) for _ in range(2)]
    w = b.op("Concat", *halves, axis=1)
    after = check_pass(b.build([b.op("MatMul", x, b.op("Transpose", b.op("Transpose", w, perm=[1, 0]), perm=[1, 0]))]),
                       fold_constants, rng)
    assert ops(after) == ["MatMul"]
