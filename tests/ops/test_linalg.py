"""MatMul, MatMulInteger, Gemm, Einsum and Det against onnxruntime."""

import numpy as np
import pytest
from aic.ir import DType, GraphBuilder, TensorType, run_graph
from aic.ir.ops import get_op

from tests.onnx_util import check_node, node_model, run_interpreter
from tests.ops.via_float32 import check_via_float32


def _x(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4, 5)),
    ((5,), (2, 5, 3)),
    ((2, 1, 3, 4), (3, 4, 2)),
    ((1, 3, 4), (2, 1, 4, 6)),
]


@pytest.mark.parametrize("a,b", MATMUL_SHAPES)
def test_matmul(rng, a, b):
    check_node("MatMul", {"a": _x(rng, *a), "b": _x(rng, *b)}, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.int64, np.uint32, np.uint64])
def test_matmul_dtypes(rng, dtype):
    if np.dtype(dtype).kind in "iu":
        a, b = rng.integers(0, 20, (2, 3, 4)).astype(dtype), rng.integers(0, 20, (4, 5)).astype(dtype)
    else:
        a, b = _x(rng, 2, 3, 4, dtype=dtype), _x(rng, 4, 5, dtype=dtype)
    tol = 2e-3 if dtype == np.float16 else 1e-6
    check_node("MatMul", {"a": a, "b": b}, rtol=tol, atol=tol)


@pytest.mark.parametrize("za,zb", [(None, None), ((), ()), ((1,), ()), ((), (5,))])
def test_matmul_integer(rng, za, zb):
    a = rng.integers(0, 255, (2, 3, 4)).astype(np.uint8)
    b = rng.integers(0, 255, (4, 5)).astype(np.uint8)
    inputs = {"a": a, "b": b}
    if za is not None:
        inputs["za"] = rng.integers(0, 255, za).astype(np.uint8)
        inputs["zb"] = rng.integers(0, 255, zb).astype(np.uint8)
    check_node("MatMulInteger", inputs, opset=10)


def test_matmul_integer_row_zero_points(rng):
    """Per-row A zero points (in the ONNX spec, not in onnxruntime) against numpy."""
    a = rng.integers(0, 255, (2, 3, 4)).astype(np.uint8)
    b = rng.integers(0, 255, (4, 5)).astype(np.uint8)
    za, zb = rng.integers(0, 255, 3).astype(np.uint8), rng.integers(0, 255, 5).astype(np.uint8)
    g = GraphBuilder()
    y = g.op("MatMulInteger", g.input("a", TensorType(DType.uint8, (2, 3, 4))), g.const(b), g.const(za), g.const(zb))
    (actual,) = run_graph(g.build([y]), {"a": a})
    expected = (a.astype(np.int64) - za[:, None].astype(np.int64)) @ (b.astype(np.int64) - zb.astype(np.int64))
    np.testing.assert_array_equal(actual, expected.astype(np.int32))


def test_matmul_integer_int8_weights(rng):
    """uint8 x int8 against exact integer arithmetic: onnxruntime's u8s8 kernel sums pairs of products in
    saturating int16 on CPUs without VNNI in its dispatch, so it is no oracle for large products."""
    a = rng.integers(0, 255, (3, 8)).astype(np.uint8)
    b = rng.integers(-128, 127, (8, 4)).astype(np.int8)
    za, zb = np.array(128, np.uint8), np.array(-3, np.int8)
    model = node_model("MatMulInteger", {"a": a, "b": b, "za": za, "zb": zb}, ("y",), None, 10)
    (actual,) = run_interpreter(model, {"a": a, "b": b, "za": za, "zb": zb})
    expected = (a.astype(np.int64) - 128) @ (b.astype(np.int64) + 3)
    np.testing.assert_array_equal(actual, expected.astype(np.int32))


GEMM_CASES = [
    ((3, 4), (4, 5), None, {}),
    ((4, 3), (4, 5), (5,), {"transA": 1}),
    ((3, 4), (5, 4), (3, 1), {"transB": 1, "alpha": 0.5, "beta": 2.0}),
    ((4, 3), (5, 4), (3, 5), {"transA": 1, "transB": 1, "beta": -1.0}),
    ((3, 4), (4, 5), (), {"alpha": 1.5}),
]


@pytest.mark.parametrize("a,b,c,attrs", GEMM_CASES)
def test_gemm(rng, a, b, c, attrs):
    inputs = {"a": _x(rng, *a), "b": _x(rng, *b)}
    if c is not None:
        inputs["c"] = _x(rng, *c)
    check_node("Gemm", inputs, attrs, rtol=1e-5, atol=1e-5)


def test_gemm_f64(rng):
    check_node("Gemm", {"a": _x(rng, 3, 4, dtype=np.float64), "b": _x(rng, 4, 2, dtype=np.float64)}, {"alpha": 2.0})


EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
    ("ij->ji", [(3, 4)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("i,i", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (1, 4, 5)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("bi...,bi...", [(2, 3, 4), (2, 3, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("i j , j k -> i k", [(3, 4), (4, 5)]),
]


@pytest.mark.parametrize("equation,shapes", EINSUM_CASES)
def test_einsum(rng, equation, shapes):
    inputs = {f"x{i}": _x(rng, *s) for i, s in enumerate(shapes)}
    check_node("Einsum", inputs, {"equation": equation}, outputs=("y",), rtol=1e-5, atol=1e-5)


def test_einsum_int_and_f64(rng):
    a, b = rng.integers(-5, 5, (2, 3)).astype(np.int32), rng.integers(-5, 5, (3, 2)).astype(np.int32)
    check_node("Einsum", {"a": a, "b": b}, {"equation": "ij,jk->ik"})
    check_node(
        "Einsum", {"a": _x(rng, 2, 3, dtype=np.float64), "b": _x(rng, 3, dtype=np.float64)}, {"equation": "ij,j"}
    )


def test_einsum_symbolic_and_errors():
    b = GraphBuilder()
    q = b.input("q", TensorType(DType.float32, ("batch", 12, "seq", 64)))
    k = b.input("k", TensorType(DType.float32, ("batch", 12, "seq", 64)))
    assert b.op("Einsum", q, k, equation="bhqd,bhkd->bhqk").type.shape == ("batch", 12, "seq", "seq")
    assert b.op("Einsum", q, equation="...d->...").type.shape == ("batch", 12, "seq")
    with pytest.raises(ValueError, match="label 'd' has sizes 64 and 12"):
        b.op("Einsum", q, k, equation="bhqd,bdkh->bhqk")
    with pytest.raises(ValueError, match="input terms"):
        b.op("Einsum", q, equation="ij,jk->ik")
    flops = get_op("Einsum").flops(
        [TensorType(DType.float32, (3, 4)), TensorType(DType.float32, (4, 5))], [], {"equation": "ij,jk->ik"}
    )
    assert flops == 2 * 3 * 4 * 5


def test_det(rng):
    check_node("Det", {"x": _x(rng, 4, 4)}, rtol=1e-4, atol=1e-5)
    check_node("Det", {"x": _x(rng, 2, 3, 3, 3)}, rtol=1e-4, atol=1e-5)
    check_via_float32("Det", {"x": _x(rng, 2, 3, 3, dtype=np.float64)})


def test_matmul_symbolic_and_errors():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("batch", "seq", 768)))
    w = b.const(np.zeros((768, 3072), np.float32))
    y = b.op("MatMul", x, w)
    assert y.type.shape == ("batch", "seq", 3072)
    assert get_op("MatMul").flops([x.type, w.type], [y.type], {}) == "4718592*batch*seq"
    with pytest.raises(ValueError, match="inner dimensions differ"):
        b.op("MatMul", x, b.const(np.zeros((512, 4), np.float32)))
    with pytest.raises(ValueError, match="do not broadcast"):
        a = b.input("a", TensorType(DType.float32, (3, 4)))
        b.op("Gemm", a, b.const(np.zeros((4, 5), np.float32)), b.const(np.zeros((4,), np.float32)))
