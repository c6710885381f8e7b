"""Normalisation and softmax ops against onnxruntime."""

import numpy as np
import pytest
from aic.ir import DType, GraphBuilder, TensorType, run_graph

from tests.onnx_util import check_node
from tests.ops.via_float32 import check_via_float32


def _x(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def _bn_inputs(rng, shape, dtype=np.float32):
    c = shape[1]
    return {
        "x": _x(rng, *shape, dtype=dtype),
        "scale": _x(rng, c, dtype=dtype),
        "b": _x(rng, c, dtype=dtype),
        "mean": _x(rng, c, dtype=dtype),
        "var": rng.uniform(0.5, 2.0, c).astype(dtype),
    }


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5), (1, 4, 3, 5), (1, 2, 2, 3, 2)])
def test_batch_norm(rng, shape):
    check_node("BatchNormalization", _bn_inputs(rng, shape), {"epsilon": 1e-3})


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_batch_norm_dtypes(rng, dtype):
    tol = 5e-3 if dtype == np.float16 else 1e-12
    check_node("BatchNormalization", _bn_inputs(rng, (1, 3, 4, 4), dtype), rtol=tol, atol=tol)


def test_batch_norm_refuses_training():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("n", 3, 4, 4)))
    params = [b.const(np.ones(3, np.float32)) for _ in range(4)]
    assert b.op("BatchNormalization", x, *params).type.shape == ("n", 3, 4, 4)
    with pytest.raises(ValueError, match="training_mode=1 is not supported"):
        b.op("BatchNormalization", x, *params, training_mode=1)
    with pytest.raises(ValueError, match="only in training mode"):
        b.node("BatchNormalization", [x, *params], num_outputs=3)
    with pytest.raises(ValueError, match="one value per channel"):
        b.op("BatchNormalization", x, b.const(np.ones(4, np.float32)), *params[1:])


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 3, 5), (1, 2, 2, 3, 2)])
def test_instance_norm(rng, shape):
    c = shape[1]
    check_node("InstanceNormalization", {"x": _x(rng, *shape), "s": _x(rng, c), "b": _x(rng, c)}, {"epsilon": 1e-4})


LAYER_NORM_CASES = [
    ((2, 5, 8), {}, True),
    ((2, 5, 8), {"axis": 1}, True),
    ((2, 5, 8), {"axis": -2, "epsilon": 1e-3}, False),
    ((3, 4, 2, 3), {"axis": 2}, True),
]


@pytest.mark.parametrize("shape,attrs,with_bias", LAYER_NORM_CASES)
def test_layer_norm(rng, shape, attrs, with_bias):
    axis = attrs.get("axis", -1) % len(shape)
    inputs = {"x": _x(rng, *shape), "s": _x(rng, *shape[axis:])}
    if with_bias:
        inputs["b"] = _x(rng, *shape[axis:])
    check_node("LayerNormalization", inputs, attrs, opset=17, outputs=("y", "mean", "inv_std"), rtol=1e-4, atol=1e-5)


def test_layer_norm_broadcast_scale_f16(rng):
    inputs = {"x": _x(rng, 2, 3, 8, dtype=np.float16), "s": _x(rng, 8, dtype=np.float16)}
    check_node("LayerNormalization", inputs, {"axis": 1}, opset=17, rtol=2e-3, atol=2e-3)


def test_layer_norm_f64_stats_f32(rng):
    inputs = {"x": _x(rng, 2, 3, 4, dtype=np.float64), "s": _x(rng, 4, dtype=np.float64)}
    check_node("LayerNormalization", inputs, opset=17, outputs=("y", "mean", "inv_std"), rtol=1e-6, atol=1e-6)


def test_layer_norm_symbolic():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float16, ("batch", "seq", 768)))
    y, mean, inv = b.node("LayerNormalization", [x, b.const(np.ones(768, np.float16))], num_outputs=3)
    assert y.type == x.type
    assert mean.type == inv.type == TensorType(DType.float32, ("batch", "seq", 1))


@pytest.mark.parametrize("shape,groups", [((2, 6, 5), 3), ((1, 4, 3, 3), 2), ((1, 4, 3, 3), 4), ((2, 3, 4), 1)])
def test_group_norm(rng, shape, groups):
    c = shape[1]
    inputs = {"x": _x(rng, *shape), "s": _x(rng, c), "b": _x(rng, c)}
    check_node("GroupNormalization", inputs, {"num_groups": groups, "epsilon": 1e-3}, opset=21, rtol=1e-4, atol=1e-5)


def test_group_norm_errors():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, (1, 6, 4)))
    p = b.const(np.ones(6, np.float32))
    with pytest.raises(ValueError, match="num_groups 4 must divide the 6 channels"):
        b.op("GroupNormalization", x, p, p, num_groups=4)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_lp_norm(rng, p, axis):
    x = _x(rng, 3, 4, 5)
    x[1, 2, :] = 0
    x[:, 1, :] = 0
    check_node("LpNormalization", {"x": x}, {"p": p, "axis": axis})


@pytest.mark.parametrize("axes", [None, [1], [0, 2], [2, 3]])
def test_mean_variance_norm(rng, axes):
    attrs = {} if axes is None else {"axes": axes}
    check_node("MeanVarianceNormalization", {"x": _x(rng, 2, 3, 4, 5)}, attrs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", [1, 3, 5])
def test_lrn(rng, size):
    attrs = {"size": size, "alpha": 0.02, "beta": 0.6, "bias": 1.5}
    check_node("LRN", {"x": _x(rng, 2, 6, 3, 4)}, attrs)


def test_lrn_even_size(rng):
    """onnxruntime refuses even sizes; the ONNX window is [c - 1, c + 2] for size 4."""
    x = _x(rng, 1, 6, 2, 2)
    (y,) = run_graph(_single("LRN", x, size=4), {"x": x})
    sq = np.pad(x.astype(np.float64) ** 2, [(0, 0), (1, 2), (0, 0), (0, 0)])
    window = sum(sq[:, i : i + 6] for i in range(4))
    np.testing.assert_allclose(y, x / (1.0 + 1e-4 / 4 * window) ** 0.75, rtol=1e-6)


def _single(op, x, **attrs):
    b = GraphBuilder()
    return b.build([b.op(op, b.input("x", TensorType(DType.from_numpy(x.dtype), x.shape)), **attrs)])


def test_norm_f64(rng):
    check_via_float32("LRN", {"x": _x(rng, 1, 5, 3, 3, dtype=np.float64)}, {"size": 3})
    x, s, b = _x(rng, 1, 4, 3, 3, dtype=np.float64), _x(rng, 4, dtype=np.float64), _x(rng, 4, dtype=np.float64)
    check_via_float32("InstanceNormalization", {"x": x, "s": s, "b": b})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
def test_softmax(rng, op, axis):
    x = _x(rng, 2, 3, 4) * 4
    x[0, 0, :2] = 7  # a tie for Hardmax
    check_node(op, {"x": x}, {"axis": axis})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_softmax_dtypes(rng, op, dtype):
    x = _x(rng, 2, 5, dtype=dtype) * 3
    if dtype == np.float16:
        check_node(op, {"x": x}, rtol=2e-3, atol=2e-3)
    elif op == "Hardmax":
        check_via_float32(op, {"x": x})
    else:
        check_node(op, {"x": x}, rtol=1e-12, atol=1e-12)


def test_softmax_large_values_and_errors(rng):
    check_node("Softmax", {"x": np.array([[1000.0, 1001.0, -1000.0]], np.float32)})
    b = GraphBuilder()
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        b.op("Softmax", b.input("x", TensorType(DType.float32, (2, 3, 4))), axis=3)
