"""Algebraic simplification and chain collapsing: expected graphs, numerics, idempotence."""

from __future__ import annotations

import numpy as np
import pytest
from aic.compiler.passes.simplify_arith import simplify_arithmetic
from aic.compiler.passes.simplify_chains import is_exact_cast, simplify_chains
from aic.ir import DType, GraphBuilder, TensorType

from .util import check_pass, ops

F32 = DType.float32


BATCH_3_4 = TensorType(F32, ("batch", 3, 4))


def _unary_graph(build, x_type=BATCH_3_4):
    b = GraphBuilder()
    x = b.input("x", x_type)
    return b.build([build(b, b.op("Relu", x))])


def c(value, dtype=np.float32):
    return np.asarray(value, dtype)


@pytest.mark.parametrize(
    "build",
    [
        lambda b, x: b.op("Mul", x, b.const(c(1))),
        lambda b, x: b.op("Mul", b.const(c([1, 1, 1, 1])), x),
        lambda b, x: b.op("Add", x, b.const(c(0))),
        lambda b, x: b.op("Add", b.const(c(-0.0)), x),
        lambda b, x: b.op("Sub", x, b.const(c(0))),
        lambda b, x: b.op("Div", x, b.const(c(1))),
        lambda b, x: b.op("Neg", b.op("Neg", x)),
        lambda b, x: b.op("Pow", x, b.const(c(1))),
        lambda b, x: b.op("Reciprocal", b.op("Reciprocal", b.op("Add", x, b.const(c(1))))),
    ],
)
def test_rewrites_to_the_operand(build, rng):
    after = check_pass(_unary_graph(build), simplify_arithmetic, rng)
    assert ops(after) in (["Relu"], ["Relu", "Add"])


@pytest.mark.parametrize(
    "build",
    [
        lambda b, x: b.op("Mul", x, b.const(c(np.ones((2, 1, 1, 1))))),  # broadcasts to a larger shape
        lambda b, x: b.op("Mul", x, b.const(c(2))),
        lambda b, x: b.op("Sub", b.const(c(0)), x),
        lambda b, x: b.op("Div", x, b.const(c(2))),
    ],
)
def test_kept_when_not_neutral(build, rng):
    graph = _unary_graph(build)
    after = check_pass(graph, simplify_arithmetic, rng)
    assert ops(after) == ops(graph)


@pytest.mark.parametrize(
    ("exponent", "expected"),
    [(2.0, ["Relu", "Mul"]), (0.5, ["Relu", "Sqrt"]), (-1.0, ["Relu", "Reciprocal"]), (3.0, ["Relu", "Pow"])],
)
def test_pow_identities(exponent, expected, rng):
    graph = _unary_graph(lambda b, x: b.op("Pow", x, b.const(c(exponent))))
    assert ops(check_pass(graph, simplify_arithmetic, rng)) == expected


def test_integer_pow_squared_becomes_mul(rng):
    graph = _unary_graph(lambda b, x: b.op("Pow", x, b.const(c(2, np.int32))), TensorType(DType.int32, (5,)))
    assert ops(check_pass(graph, simplify_arithmetic, rng)) == ["Relu", "Mul"]


def test_div_one_by_x_is_reciprocal(rng):
    graph = _unary_graph(lambda b, x: b.op("Div", b.const(c(1)), b.op("Add", x, b.const(c(1)))))
    assert ops(check_pass(graph, simplify_arithmetic, rng)) == ["Relu", "Add", "Reciprocal"]


def test_constant_factors_and_offsets_merge(rng):
    def build(b, x):
        scaled = b.op("Div", b.op("Mul", b.op("Mul", x, b.const(c(2))), b.const(c([1, 2, 3, 4]))), b.const(c(4)))
        return b.op(
            "Add", b.op("Sub", b.op("Add", scaled, b.const(c(1))), b.const(c(3))), b.const(c([[0.5], [1], [2]]))
        )

    after = check_pass(_unary_graph(build), simplify_arithmetic, rng)
    assert ops(after) == ["Relu", "Mul", "Add"]
    np.testing.assert_allclose(after.nodes[1].inputs[1].const, [0.5, 1, 1.5, 2])


def test_integer_offsets_merge_with_wraparound(rng):
    def build(b, x):
        return b.op("Sub", b.op("Add", x, b.const(c(250, np.uint8))), b.const(c(10, np.uint8)))

    b = GraphBuilder()
    graph = b.build([build(b, b.input("x", TensorType(DType.uint8, (4,))))])
    after = check_pass(graph, simplify_arithmetic, rng)
    assert ops(after) == ["Add"]
    assert after.nodes[0].inputs[1].const == 240


def test_shared_intermediate_is_not_merged(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (3,)))
    inner = b.op("Mul", x, b.const(c(2)))
    graph = b.build([b.op("Mul", inner, b.const(c(3))), inner])
    assert ops(check_pass(graph, simplify_arithmetic, rng)) == ["Mul", "Mul"]


def test_transpose_pairs_compose_and_cancel(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, ("n", 2, 3, 4)))
    t1 = b.op("Transpose", x, perm=[0, 2, 3, 1])
    back = b.op("Transpose", t1, perm=[0, 3, 1, 2])
    other = b.op("Transpose", t1, perm=[1, 0, 2, 3])
    after = check_pass(b.build([b.op("Relu", back), b.op("Relu", other)]), simplify_chains, rng)
    assert ops(after) == ["Transpose", "Relu", "Relu"]
    assert after.nodes[0].attrs["perm"] == [2, 0, 3, 1]


def test_reshape_chains(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, ("batch", 3, 4)))
    flat = b.op("Reshape", x, b.const(np.array([0, 12], np.int64)))
    back = b.op("Reshape", flat, b.const(np.array([0, 3, 4], np.int64)))
    split = b.op(
        "Reshape", b.op("Unsqueeze", flat, b.const(np.array([1], np.int64))), b.const(np.array([-1, 2, 6], np.int64))
    )
    after = check_pass(b.build([b.op("Relu", back), split]), simplify_chains, rng)
    assert ops(after) == ["Reshape", "Relu"]
    assert after.outputs[1].producer.inputs[0] is after.inputs[0]


def test_reshape_with_zero_copy_of_intermediate_is_kept(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, ("batch", 12)))
    mid = b.op("Reshape", x, b.const(np.array([-1, 3, 4], np.int64)))
    graph = b.build([b.op("Reshape", mid, b.const(np.array([0, 0, 2, 2], np.int64)))])
    assert ops(check_pass(graph, simplify_chains, rng)) == ["Reshape", "Reshape"]


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        ((F32, DType.float64, F32), []),
        ((F32, DType.float64, DType.float16), ["Cast"]),
        ((DType.int8, DType.int32, DType.int64), ["Cast"]),
        ((DType.int8, F32, DType.int8), []),
        ((F32, DType.int32, F32), ["Cast", "Cast"]),
        ((DType.int16, F32, DType.int8), ["Cast", "Cast"]),
        ((F32, DType.float16, F32), ["Cast", "Cast"]),
    ],
)
def test_cast_chains(types, expected, rng):
    t0, t1, t2 = types
    b = GraphBuilder()
    x = b.input("x", TensorType(t0, (2, 3)))
    h = b.op("Abs", x)
    y = b.op("Cast", b.op("Cast", h, to=t1.onnx), to=t2.onnx)
    after = check_pass(b.build([b.op("Abs", y)]), simplify_chains, rng)
    assert ops(after) == ["Abs", *expected, "Abs"]


def test_exact_casts():
    assert is_exact_cast(DType.uint8, DType.bfloat16) and not is_exact_cast(DType.int16, DType.float16)
    assert is_exact_cast(DType.uint16, DType.int32) and not is_exact_cast(DType.int16, DType.uint32)
    assert is_exact_cast(DType.bool, DType.float16) and not is_exact_cast(DType.float16, DType.bfloat16)
