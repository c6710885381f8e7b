"""Elementwise type inference with symbolic dims, contents propagation for shape arithmetic,
errors and FLOP counts."""

import numpy as np
import pytest
from aic.ir import DType, GraphBuilder, OpError, TensorType, run_graph
from aic.ir.ops import OPS

F32, I64 = DType.float32, DType.int64
SIZES = {"batch": 2, "seq": 5}


def _evaluate(dim, sizes=SIZES) -> int:
    """The value of a symbolic dim expression for concrete symbol sizes."""
    return dim if isinstance(dim, int) else eval(dim, {}, dict(sizes))


def test_shape_arithmetic_contents_match_runtime_values():
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, ("batch", 4, "seq")))
    s = b.op("Shape", x)
    const = lambda *v: b.const(np.array(v, np.int64))  # noqa: E731
    cases = {
        "mul": (b.op("Mul", s, b.const(np.int64(2))), ("2*batch", 8, "2*seq")),
        "div": (b.op("Div", s, const(1, 2, 1)), ("batch", 2, "seq")),
        "div_back": (b.op("Div", b.op("Mul", s, const(3, 1, 1)), const(3, 1, 1)), ("batch", 4, "seq")),
        "add": (b.op("Add", s, b.const(np.int64(-1))), None),
        "sub": (b.op("Sub", s, b.const(np.int64(1))), None),
        "sum_product": (b.op("Mul", b.op("Add", s, s), s), None),  # (batch+batch)*batch, not batch*batch+batch
        "sum_quotient": (b.op("Div", b.op("Mul", b.op("Add", s, s), s), b.op("Add", s, s)), ("batch", 4, "seq")),
        "equal": (b.op("Equal", s, b.const(np.int64(-1))), (0, 0, 0)),
        "equal_self": (b.op("Equal", s, s), (1, 1, 1)),
        "less_self": (b.op("Less", s, s), (0, 0, 0)),
        "max": (b.op("Max", s, b.const(np.int64(0))), ("batch", 4, "seq")),
        "min": (b.op("Min", s, const(-1, 7, 9)), (-1, 4, None)),
        "abs": (b.op("Abs", s), ("batch", 4, "seq")),
        "neg": (b.op("Neg", s), (None, -4, None)),
        "identity": (b.op("Identity", s), ("batch", 4, "seq")),
        "cast": (b.op("Cast", s, to=DType.int32.onnx), ("batch", 4, "seq")),
        "where": (
            b.op("Where", b.op("Equal", const(-1, 0, 7), b.const(np.int64(-1))), s, const(1, 1, 1)),
            ("batch", 1, 1),
        ),
    }
    graph = b.build([v for v, _ in cases.values()])
    results = run_graph(graph, {"x": np.zeros((SIZES["batch"], 4, SIZES["seq"]), np.float32)})
    for (name, (value, expected)), actual in zip(cases.items(), results):
        if expected is not None and None in expected:
            assert value.sym is None, name  # all or nothing
            continue
        if expected is not None:
            assert value.sym == expected, name
        assert value.sym is not None, name
        assert [_evaluate(d) for d in value.sym] == actual.tolist(), name


def test_contents_of_constants_and_casts():
    b = GraphBuilder()
    c = b.const(np.array([6, -7, 0], np.int64))
    assert b.op("Div", c, b.const(np.array([4, 2, 3], np.int64))).sym == (1, -3, 0)  # truncation
    assert b.op("Cast", c, to=DType.bool.onnx).sym == (1, 1, 0)
    assert b.op("Cast", c, to=DType.uint8.onnx).sym == (6, 249, 0)
    assert b.op("Cast", c, to=DType.float32.onnx).sym is None
    assert b.op("Not", b.op("Equal", c, c)).sym == (0, 0, 0)
    assert b.op("Div", c, b.const(np.int64(0))).sym is None  # integer division by zero is not folded


def test_unknown_contents_stay_unknown():
    b = GraphBuilder()
    s = b.op("Shape", b.input("x", TensorType(F32, ("batch", 3))))
    assert b.op("Mul", s, b.input("k", TensorType(I64, (2,)))).sym is None
    assert b.op("Equal", s, b.const(np.int64(3))).sym is None  # batch may be 3
    assert b.op("Max", s, b.const(np.int64(1))).sym is None  # batch may be 0
    assert b.op("Mul", s, b.const(np.int64(-2))).sym is None


@pytest.mark.parametrize(
    "sa,sb,expected",
    [
        (("n", 3), (3,), ("n", 3)),
        (("n", 1), (1, "m"), ("n", "m")),
        (("n", 4), (1,), ("n", 4)),
        (("n",), (5,), (5,)),
        ((), ("n", 2), ("n", 2)),
    ],
)
def test_symbolic_broadcast(sa, sb, expected):
    b = GraphBuilder()
    y = b.op("Add", b.input("a", TensorType(F32, sa)), b.input("b", TensorType(F32, sb)))
    assert y.type == TensorType(F32, expected)
    w = b.op("Where", b.input("c", TensorType(DType.bool, ("k", 1, 1))), y, b.input("z", TensorType(F32, ())))
    assert w.type.shape == ("k", *(1,) * (2 - len(expected)), *expected)[-3:]


def test_comparison_and_predicate_types():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float16, ("n", 2)))
    assert b.op("Less", x, x).type == TensorType(DType.bool, ("n", 2))
    assert b.op("IsNaN", x).type.dtype is DType.bool
    assert b.op("Pow", x, b.input("e", TensorType(DType.int8, (2,)))).type == x.type
    y, mask = b.node("Dropout", [x], num_outputs=2)
    assert y.type == x.type and mask.type == TensorType(DType.bool, ("n", 2))


@pytest.mark.parametrize(
    "op,types,attrs,message",
    [
        ("Add", [(F32, (2,)), (I64, (2,))], {}, "inputs \\[0, 1\\] must have one element type"),
        ("Mul", [(F32, (3,)), (F32, (4,))], {}, "do not broadcast"),
        ("Where", [(F32, (2,)), (F32, (2,)), (F32, (2,))], {}, "element type float32 is not supported"),
        ("Where", [(DType.bool, (2,)), (F32, (2,)), (I64, (2,))], {}, "must have one element type"),
        ("Pow", [(F32, (2,)), (DType.bool, (2,))], {}, "exponent element type bool is not numeric"),
        ("BitShift", [(F32, (2,)), (F32, (2,))], {"direction": "LEFT"}, "element type float32 is not supported"),
        ("Exp", [(DType.int32, (2,))], {}, "element type int32 is not supported"),
        ("Max", [(F32, (2,)), (F32, (2,)), (DType.float64, (2,))], {}, "must have one element type"),
    ],
)
def test_inference_errors(op, types, attrs, message):
    b = GraphBuilder()
    inputs = [b.input(f"i{k}", TensorType(*t)) for k, t in enumerate(types)]
    with pytest.raises(OpError, match=f"{op} node '{op.lower()}'.*{message}"):
        b.node(op, inputs, attrs)


def test_attribute_errors():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.int32, (2,)))
    with pytest.raises(OpError, match=r"direction.*expected one of"):
        b.op("BitShift", x, x, direction="UP")
    with pytest.raises(OpError, match="missing required attribute 'direction'"):
        b.op("BitShift", x, x)
    with pytest.raises(OpError, match=r"approximate.*expected one of"):
        b.op("Gelu", b.input("f", TensorType(F32, (2,))), approximate="erf")


@pytest.mark.parametrize(
    "op,n_inputs,expected",
    [
        ("Add", 2, "4*n"),
        ("Sum", 3, "8*n"),
        ("Mean", 3, "12*n"),
        ("Cast", 1, 0),
        ("Gelu", 1, "32*n"),
        ("Relu", 1, "4*n"),
    ],
)
def test_flops(op, n_inputs, expected):
    t = TensorType(F32, ("n", 4))
    assert OPS[op].flops([t] * n_inputs, [t], {}) == expected
