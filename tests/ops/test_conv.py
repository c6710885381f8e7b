"""Conv, ConvTranspose and ConvInteger against onnxruntime."""

import numpy as np
import pytest
from aic.ir import DType, GraphBuilder, TensorType
from aic.ir.ops import get_op

from tests.onnx_util import check_node
from tests.ops.via_float32 import check_via_float32


def _data(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


CONV_CASES = [
    # x shape, w shape, attrs
    ((1, 3, 7), (4, 3, 3), {}),
    ((2, 3, 8, 7), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 4, 9, 9), (6, 2, 3, 2), {"group": 2, "strides": [2, 1], "pads": [1, 0, 2, 1]}),
    ((1, 6, 8, 8), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),  # depthwise
    ((1, 4, 10, 9), (8, 4, 3, 3), {"dilations": [2, 3], "strides": [1, 2]}),
    ((1, 3, 9, 8), (5, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 3, 9, 8), (5, 3, 4, 2), {"auto_pad": "SAME_LOWER", "strides": [2, 3]}),
    ((1, 3, 9, 8), (5, 3, 3, 3), {"auto_pad": "VALID", "strides": [2, 2]}),
    ((1, 2, 5, 6, 4), (3, 2, 3, 3, 2), {"pads": [1, 0, 1, 1, 1, 0]}),
    ((2, 8, 6, 6), (4, 8, 1, 1), {"kernel_shape": [1, 1]}),
]


@pytest.mark.parametrize("xs,ws,attrs", CONV_CASES)
def test_conv(rng, xs, ws, attrs):
    x, w = _data(rng, *xs), _data(rng, *ws)
    check_node("Conv", {"x": x}, attrs, initializers={"w": w}, rtol=1e-4, atol=1e-5)


def test_conv_bias_f64(rng):
    x, w, b = _data(rng, 1, 4, 6, 6, dtype=np.float64), _data(rng, 4, 2, 3, 3, dtype=np.float64), _data(rng, 4)
    check_via_float32("Conv", {"x": x, "w": w, "b": b.astype(np.float64)}, {"group": 2})


def test_conv_f16(rng):
    x, w, b = _data(rng, 1, 3, 6, 6, dtype=np.float16), _data(rng, 4, 3, 3, 3, dtype=np.float16), _data(rng, 4)
    check_node("Conv", {"x": x, "w": w, "b": b.astype(np.float16)}, {"pads": [1, 1, 1, 1]}, rtol=2e-3, atol=2e-3)


def test_conv_symbolic_shapes():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("n", 3, "h", 32)))
    w = b.const(np.zeros((8, 3, 3, 3), np.float32))
    y = b.op("Conv", x, w, pads=[1, 1, 1, 1])
    assert y.type.shape == ("n", 8, "h", 32)
    z = b.op("Conv", x, w, strides=[2, 2], auto_pad="SAME_UPPER")
    assert z.type.shape[0] == "n" and z.type.shape[3] == 16 and isinstance(z.type.shape[2], str)
    assert get_op("Conv").flops([x.type, w.type], [y.type], {}) == "13824*h*n"  # 2 * 8 * 32 * 3*3*3 per (n, h)
    t = b.op("ConvTranspose", y, b.const(np.zeros((8, 2, 3, 3), np.float32)), strides=[2, 2], pads=[1, 1, 0, 0])
    assert t.type.shape[:2] == ("n", 2) and t.type.shape[3] == 64 and "h" in t.type.shape[2]
    same = b.op("ConvTranspose", y, b.const(np.zeros((8, 2, 3, 3), np.float32)), strides=[2, 2], auto_pad="SAME_LOWER")
    assert same.type.shape == ("n", 2, "2*h", 64)


def test_conv_errors():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, (1, 3, 8, 8)))
    with pytest.raises(ValueError, match="input channels 3 != weight channels 4"):
        b.op("Conv", x, b.const(np.zeros((8, 4, 3, 3), np.float32)))
    with pytest.raises(ValueError, match="does not fit"):
        b.op("Conv", x, b.const(np.zeros((8, 3, 9, 9), np.float32)))


TRANSPOSE_CASES = [
    ((1, 3, 5), (3, 2, 3), {}),
    ((2, 3, 4, 5), (3, 2, 3, 3), {"strides": [2, 2]}),
    ((1, 4, 4, 3), (4, 3, 3, 2), {"group": 2, "strides": [2, 3], "pads": [1, 0, 0, 1], "output_padding": [1, 2]}),
    ((1, 2, 4, 4), (2, 3, 3, 3), {"dilations": [2, 1], "strides": [1, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 3, 4), (2, 3, 3, 3), {"strides": [2, 2], "output_shape": [8, 9]}),
    ((1, 2, 3, 4), (2, 3, 3, 3), {"strides": [2, 2], "output_shape": [6, 8]}),
    ((1, 2, 3, 4), (2, 3, 3, 3), {"strides": [2, 2], "output_shape": [6, 8], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 3, 4), (2, 3, 3, 3), {"strides": [2, 2], "output_shape": [6, 8], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 3, 4), (2, 3, 3, 3), {"strides": [2, 1], "dilations": [2, 2], "output_shape": [8, 7]}),
    ((1, 2, 3, 4), (2, 3, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 3, 4), (2, 3, 4, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 3, 3, 2), (2, 2, 2, 3, 2), {"strides": [2, 1, 2]}),
]


@pytest.mark.parametrize("xs,ws,attrs", TRANSPOSE_CASES)
def test_conv_transpose(rng, xs, ws, attrs):
    x, w = _data(rng, *xs), _data(rng, *ws)
    b = _data(rng, ws[1] * attrs.get("group", 1))
    check_node("ConvTranspose", {"x": x}, attrs, initializers={"w": w, "b": b}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("wdtype", [np.uint8, np.int8])
def test_conv_integer(rng, wdtype):
    x = rng.integers(0, 255, (1, 3, 6, 5)).astype(np.uint8)
    info = np.iinfo(wdtype)
    w = rng.integers(info.min, info.max, (4, 3, 3, 3)).astype(wdtype)
    zx = np.array(7, np.uint8)
    zw = np.array(3, wdtype)
    check_node("ConvInteger", {"x": x, "w": w, "zx": zx, "zw": zw}, {"pads": [1, 1, 0, 1]}, opset=10)
