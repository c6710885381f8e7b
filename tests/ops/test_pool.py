"""MaxPool, AveragePool, LpPool and the global pools against onnxruntime."""

import numpy as np
import pytest
from aic.ir import DType, GraphBuilder, TensorType

from tests.onnx_util import check_node
from tests.ops.via_float32 import check_via_float32

WINDOW_CASES = [
    ((1, 2, 7), {"kernel_shape": [3]}),
    ((2, 3, 8, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 8, 7), {"kernel_shape": [3, 2], "strides": [2, 2], "ceil_mode": 1}),
    ((1, 2, 7, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 1], "ceil_mode": 1}),
    ((1, 2, 9, 8), {"kernel_shape": [2, 3], "dilations": [2, 2], "strides": [1, 2]}),
    (
        (1, 2, 9, 8),
        {"kernel_shape": [3, 3], "dilations": [2, 1], "strides": [2, 2], "pads": [2, 1, 1, 0], "ceil_mode": 1},
    ),
    ((1, 2, 9, 8), {"kernel_shape": [3, 2], "strides": [2, 3], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 9, 8), {"kernel_shape": [4, 3], "strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 9, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "VALID"}),
    ((1, 2, 5, 6, 4), {"kernel_shape": [2, 3, 2], "strides": [2, 1, 2], "pads": [0, 1, 0, 1, 1, 1]}),
]


def _x(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("shape,attrs", WINDOW_CASES)
def test_max_pool(rng, shape, attrs):
    check_node("MaxPool", {"x": _x(rng, shape)}, attrs)


@pytest.mark.parametrize("shape,attrs", WINDOW_CASES)
@pytest.mark.parametrize("storage_order", [0, 1])
def test_max_pool_indices(rng, shape, attrs, storage_order):
    check_node("MaxPool", {"x": _x(rng, shape)}, {**attrs, "storage_order": storage_order}, outputs=("y", "i"))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.float16, np.float64])
def test_max_pool_dtypes(rng, dtype):
    x = (
        rng.integers(0, 100, (1, 3, 7, 6)).astype(dtype)
        if dtype in (np.int8, np.uint8)
        else _x(rng, (1, 3, 7, 6), dtype)
    )
    check_node("MaxPool", {"x": x}, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]})


@pytest.mark.parametrize("shape,attrs", WINDOW_CASES)
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool(rng, shape, attrs, count_include_pad):
    check_node("AveragePool", {"x": _x(rng, shape)}, {**attrs, "count_include_pad": count_include_pad})


def test_average_pool_f64(rng):
    x = _x(rng, (1, 2, 6, 6), np.float64)
    check_via_float32("AveragePool", {"x": x}, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]})


@pytest.mark.parametrize("shape,attrs", WINDOW_CASES)
@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool(rng, shape, attrs, p):
    check_node("LpPool", {"x": _x(rng, shape)}, {**attrs, "p": p})


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"])
@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 3, 5), (1, 2, 3, 2, 4)])
def test_global_pools(rng, op, shape):
    check_node(op, {"x": _x(rng, shape)})


def test_global_lp_pool_p3(rng):
    check_node("GlobalLpPool", {"x": _x(rng, (1, 3, 4, 4))}, {"p": 3})


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pools_f16_f64(rng, op):
    check_node(op, {"x": _x(rng, (1, 3, 4, 5), np.float16)}, rtol=1e-3, atol=1e-3)
    check_via_float32(op, {"x": _x(rng, (1, 3, 4, 5), np.float64)})


def test_pool_symbolic_shapes():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("n", 64, 112, "w")))
    y, idx = b.node("MaxPool", [x], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, num_outputs=2)
    assert y.type.shape[:3] == ("n", 64, 56) and isinstance(y.type.shape[3], str)
    assert idx.type == TensorType(DType.int64, y.type.shape)
    c = b.op("AveragePool", x, kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    assert c.type.shape[2] == 56 and isinstance(c.type.shape[3], str) and c.type.shape[3] != y.type.shape[3]
    g = b.op("GlobalAveragePool", x)
    assert g.type.shape == ("n", 64, 1, 1)


def test_pool_errors():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, (1, 3, 4, 4)))
    with pytest.raises(ValueError, match="kernel_shape"):
        b.op("MaxPool", x, kernel_shape=[2])
    with pytest.raises(ValueError, match="does not fit"):
        b.op("AveragePool", x, kernel_shape=[5, 5])


def test_max_roi_pool(rng):
    """Positive inputs only: onnxruntime starts each bin's maximum at FLT_MIN, not -inf."""
    x = rng.uniform(0.1, 1.0, (2, 3, 8, 9)).astype(np.float32)
    rois = np.array([[0, 1, 1, 6, 5], [1, 0, 0, 8, 7], [1, 2.4, 3.6, 2.4, 3.6], [0, 7, 6, 20, 20]], np.float32)
    check_node("MaxRoiPool", {"x": x, "rois": rois}, {"pooled_shape": [2, 3]})
    check_node("MaxRoiPool", {"x": x, "rois": rois}, {"pooled_shape": [3, 2], "spatial_scale": 0.5})
