"""Composite-pattern recognition: GELU, LayerNorm, Softmax, Swish, HardSwish in exported orderings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from aic.compiler.passes.fuse_activations import fuse_activations
from aic.compiler.passes.fuse_gelu import fuse_gelu
from aic.compiler.passes.fuse_layernorm import fuse_layernorm
from aic.compiler.passes.fuse_softmax import fuse_softmax
from aic.ir import DType, GraphBuilder, TensorType

from .util import check_pass, ops

F32 = DType.float32


def c(value):
    return np.asarray(value, np.float32)


def _graph(build, shape=("batch", 4, 8)):
    """x -> Neg -> pattern -> Neg: the pattern's input and output are inner values."""
    b = GraphBuilder()
    x = b.op("Neg", b.input("x", TensorType(F32, shape)))
    return b.build([b.op("Neg", build(b, x))])


def _erf_term(b, x, divide=True):
    arg = b.op("Div", x, b.const(c(math.sqrt(2)))) if divide else b.op("Mul", x, b.const(c(1 / math.sqrt(2))))
    return b.op("Add", b.op("Erf", arg), b.const(c(1)))


def _tanh_term(b, x, cube):
    inner = b.op("Add", x, b.op("Mul", b.const(c(0.044715)), cube(b, x)))
    return b.op("Add", b.const(c(1)), b.op("Tanh", b.op("Mul", inner, b.const(c(math.sqrt(2 / math.pi))))))


GELUS = {
    "torch": lambda b, x: b.op("Mul", b.op("Mul", x, _erf_term(b, x)), b.const(c(0.5))),
    "half-first": lambda b, x: b.op("Mul", b.op("Mul", x, b.const(c(0.5))), _erf_term(b, x, divide=False)),
    "div-two": lambda b, x: b.op("Div", b.op("Mul", _erf_term(b, x), x), b.const(c(2))),
    "half-plus-half": lambda b, x: b.op(
        "Mul",
        x,
        b.op("Add", b.const(c(0.5)), b.op("Mul", b.op("Erf", b.op("Div", x, b.const(c(1.4142135)))), b.const(c(0.5)))),
    ),
    "tanh-pow": lambda b, x: b.op(
        "Mul", b.op("Mul", b.const(c(0.5)), x), _tanh_term(b, x, lambda b, x: b.op("Pow", x, b.const(c(3))))
    ),
    "tanh-mul": lambda b, x: b.op(
        "Mul", x, b.op("Mul", _tanh_term(b, x, lambda b, x: b.op("Mul", b.op("Mul", x, x), x)), b.const(c(0.5)))
    ),
}


@pytest.mark.parametrize("form", sorted(GELUS))
def test_gelu_forms(form, rng):
    after = check_pass(_graph(GELUS[form]), fuse_gelu, rng)
    assert ops(after) == ["Neg", "Gelu", "Neg"]
    assert after.nodes[1].attrs["approximate"] == ("tanh" if form.startswith("tanh") else "none")


def test_gelu_with_wrong_constant_or_shared_intermediate_is_kept(rng):
    wrong = _graph(lambda b, x: b.op("Mul", b.op("Mul", x, _erf_term(b, x)), b.const(c(0.25))))
    assert "Gelu" not in ops(check_pass(wrong, fuse_gelu, rng))

    def shared(b, x):
        term = _erf_term(b, x)
        return b.op("Add", b.op("Mul", b.op("Mul", x, term), b.const(c(0.5))), term)

    assert "Gelu" not in ops(check_pass(_graph(shared), fuse_gelu, rng))


def _layernorm(b, x, square="pow", gamma=True, beta=True, axes=(-1,), recip=False):
    axes_c = b.const(np.array(axes, np.int64))
    d = b.op("Sub", x, b.op("ReduceMean", x, axes_c))
    sq = b.op("Pow", d, b.const(c(2))) if square == "pow" else b.op("Mul", d, d)
    std = b.op("Sqrt", b.op("Add", b.op("ReduceMean", sq, axes_c), b.const(c(1e-6))))
    n = b.op("Mul", b.op("Reciprocal", std), d) if recip else b.op("Div", d, std)
    if gamma:
        n = b.op("Mul", b.const(c(np.linspace(0.5, 2, 8))), n)
    if beta:
        n = b.op("Add", n, b.const(c(np.linspace(-1, 1, 8))))
    return n


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"square": "mul"}, {"gamma": False}, {"beta": False}, {"recip": True}, {"gamma": False, "beta": False}],
)
def test_layernorm_forms(kwargs, rng):
    after = check_pass(_graph(lambda b, x: _layernorm(b, x, **kwargs)), fuse_layernorm, rng, rtol=1e-4, atol=1e-5)
    assert ops(after) == ["Neg", "LayerNormalization", "Neg"]
    assert after.nodes[1].attrs["axis"] == 2 and after.nodes[1].attrs["epsilon"] == pytest.approx(1e-6)


def test_layernorm_over_two_trailing_axes(rng):
    after = check_pass(
        _graph(lambda b, x: _layernorm(b, x, gamma=False, beta=False, axes=(1, 2))),
        fuse_layernorm,
        rng,
        rtol=1e-4,
        atol=1e-5,
    )
    assert after.nodes[1].op == "LayerNormalization" and after.nodes[1].attrs["axis"] == 1


def test_layernorm_over_a_leading_axis_is_kept(rng):
    graph = _graph(lambda b, x: _layernorm(b, x, gamma=False, beta=False, axes=(1,)))
    assert "LayerNormalization" not in ops(check_pass(graph, fuse_layernorm, rng))


def _softmax(b, x, subtract_max=True, recip=False, axis=-1):
    axes = b.const(np.array([axis], np.int64))
    z = b.op("Sub", x, b.op("ReduceMax", x, axes)) if subtract_max else x
    e = b.op("Exp", z)
    s = b.op("ReduceSum", e, axes)
    return b.op("Mul", b.op("Reciprocal", s), e) if recip else b.op("Div", e, s)


@pytest.mark.parametrize("kwargs", [{}, {"subtract_max": False}, {"recip": True}, {"axis": 1}])
def test_softmax_forms(kwargs, rng):
    after = check_pass(_graph(lambda b, x: _softmax(b, x, **kwargs)), fuse_softmax, rng)
    assert ops(after) == ["Neg", "Softmax", "Neg"]
    assert after.nodes[1].attrs["axis"] == kwargs.get("axis", -1) % 3


def test_softmax_with_mismatched_axes_is_kept(rng):
    def build(b, x):
        e = b.op("Exp", x)
        return b.op("Div", e, b.op("ReduceSum", e, b.const(np.array([1, 2], np.int64))))

    assert "Softmax" not in ops(check_pass(_graph(build), fuse_softmax, rng))


ACTIVATIONS = {
    "silu": (lambda b, x: b.op("Mul", b.op("Sigmoid", x), x), "Swish", 1.0),
    "swish": (lambda b, x: b.op("Mul", x, b.op("Sigmoid", b.op("Mul", x, b.const(c(1.5))))), "Swish", 1.5),
    "hardsigmoid": (lambda b, x: b.op("Mul", x, b.op("HardSigmoid", x, alpha=1 / 6)), "HardSwish", None),
    "relu6": (
        lambda b, x: b.op(
            "Div",
            b.op("Mul", x, b.op("Clip", b.op("Add", x, b.const(c(3))), b.const(c(0)), b.const(c(6)))),
            b.const(c(6)),
        ),
        "HardSwish",
        None,
    ),
}


@pytest.mark.parametrize("form", sorted(ACTIVATIONS))
def test_activation_forms(form, rng):
    build, op, alpha = ACTIVATIONS[form]
    after = check_pass(_graph(build), fuse_activations, rng)
    assert ops(after) == ["Neg", op, "Neg"]
    if alpha is not None:
        assert after.nodes[1].attrs["alpha"] == pytest.approx(alpha)


def test_hard_sigmoid_with_default_alpha_is_not_hard_swish(rng):
    graph = _graph(lambda b, x: b.op("Mul", x, b.op("HardSigmoid", x)))
    assert "HardSwish" not in ops(check_pass(graph, fuse_activations, rng))
