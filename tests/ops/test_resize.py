"""Resize against onnxruntime: every mode, coordinate mode and nearest mode."""

import numpy as np
import pytest
from aic.ir import DType, GraphBuilder, TensorType

from tests.onnx_util import check_node
from tests.ops.via_float32 import check_via_float32

COORDINATE_MODES = [
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_half_pixel_for_nn",
]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
SCALES = [(2.0, 3.0), (0.5, 0.75), (1.7, 0.6), (1.0, 2.5)]


def _x(rng, shape=(1, 2, 4, 5), dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def _resize(x, attrs, scales=None, sizes=None, roi=None, rtol=1e-5, atol=1e-5, check=check_node):
    inits = {"roi": np.asarray(roi if roi is not None else [], np.float32)}
    names = ["x", "roi"]
    if scales is not None:
        inits["scales"] = np.asarray(scales, np.float32)
        names.append("scales")
    else:
        inits["sizes"] = np.asarray(sizes, np.int64)
        names += ["", "sizes"]
    return check("Resize", {"x": x}, attrs, opset=19, initializers=inits, input_names=names, rtol=rtol, atol=atol)


@pytest.mark.parametrize("coordinate_mode", COORDINATE_MODES)
@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
@pytest.mark.parametrize("hw", SCALES)
def test_nearest(rng, coordinate_mode, nearest_mode, hw):
    attrs = {"mode": "nearest", "coordinate_transformation_mode": coordinate_mode, "nearest_mode": nearest_mode}
    _resize(_x(rng), attrs, scales=[1, 1, *hw])


@pytest.mark.parametrize("coordinate_mode", COORDINATE_MODES)
@pytest.mark.parametrize("hw", SCALES)
def test_linear(rng, coordinate_mode, hw):
    _resize(_x(rng), {"mode": "linear", "coordinate_transformation_mode": coordinate_mode}, scales=[1, 1, *hw])


@pytest.mark.parametrize("coordinate_mode", COORDINATE_MODES)
@pytest.mark.parametrize("hw", SCALES)
@pytest.mark.parametrize("exclude_outside", [0, 1])
def test_cubic(rng, coordinate_mode, hw, exclude_outside):
    attrs = {"mode": "cubic", "coordinate_transformation_mode": coordinate_mode, "exclude_outside": exclude_outside}
    _resize(_x(rng), {**attrs, "cubic_coeff_a": -0.5}, scales=[1, 1, *hw])


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("sizes", [(7, 3), (2, 9), (1, 1)])
def test_sizes(rng, mode, sizes):
    _resize(_x(rng), {"mode": mode}, sizes=[1, 2, *sizes])


@pytest.mark.parametrize("policy", ["not_larger", "not_smaller"])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_keep_aspect_ratio(rng, policy, mode):
    _resize(_x(rng), {"mode": mode, "keep_aspect_ratio_policy": policy, "axes": [2, 3]}, sizes=[7, 7])


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_axes(rng, mode):
    _resize(_x(rng), {"mode": mode, "axes": [3, 2]}, scales=[1.5, 0.5])
    _resize(_x(rng), {"mode": mode, "axes": [-1]}, sizes=[8])


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("roi", [(0.1, 0.2, 0.9, 0.7), (-0.3, 0.25, 1.2, 0.5)])
def test_tf_crop_and_resize(rng, mode, roi):
    attrs = {"mode": mode, "coordinate_transformation_mode": "tf_crop_and_resize", "extrapolation_value": 7.5}
    _resize(_x(rng), {**attrs, "axes": [2, 3]}, sizes=[5, 4], roi=roi)
    _resize(_x(rng), attrs, sizes=[1, 2, 3, 1], roi=[0, 0, *roi[:2], 1, 1, *roi[2:]])


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("hw", [(0.5, 0.3), (0.6, 1.0), (2.0, 0.4)])
@pytest.mark.parametrize("exclude_outside", [0, 1])
def test_antialias(rng, mode, hw, exclude_outside):
    attrs = {"mode": mode, "antialias": 1, "exclude_outside": exclude_outside, "cubic_coeff_a": -0.5}
    _resize(_x(rng, (1, 2, 9, 10)), attrs, scales=[1, 1, *hw])


def test_linear_3d_and_2d(rng):
    _resize(_x(rng, (1, 1, 3, 4, 5)), {"mode": "linear"}, scales=[1, 1, 2.0, 0.5, 1.5])
    _resize(_x(rng, (4, 5)), {"mode": "linear"}, scales=[0.5, 1.5])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.float16])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_dtypes(rng, dtype, mode):
    x = (rng.standard_normal((1, 2, 3, 4)) * 50).astype(dtype)
    tol = 2e-3 if dtype == np.float16 else 1e-6
    _resize(x, {"mode": mode}, scales=[1, 1, 2.0, 1.5], rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_float64(rng, mode):
    _resize(_x(rng, dtype=np.float64), {"mode": mode}, scales=[1, 1, 2.0, 0.6], check=check_via_float32)


def test_symbolic_shapes():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("n", 3, "h", 10)))
    roi = b.const(np.zeros(0, np.float32))
    y = b.op("Resize", x, roi, b.const(np.array([1, 1, 2, 0.5], np.float32)))
    assert y.type.shape == ("n", 3, "2*h", 5)
    z = b.op("Resize", x, None, None, b.const(np.array([8, 8], np.int64)), axes=[2, 3])
    assert z.type.shape == ("n", 3, 8, 8)
    with pytest.raises(ValueError, match="exactly one of 'scales' and 'sizes'"):
        b.op("Resize", x)
    with pytest.raises(ValueError, match="must hold 2 values"):
        b.op("Resize", x, None, b.const(np.ones(4, np.float32)), axes=[2, 3])
