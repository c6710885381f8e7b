"""Vision and detection ops against onnxruntime: GridSample, AffineGrid, DeformConv,
Col2Im, MaxUnpool, RoiAlign, NonMaxSuppression; plus CumProd, BitCast and
Unsqueeze with a scalar axis."""

import numpy as np
import pytest
from aic.ir import DType, GraphBuilder, OpError, TensorType

from tests.onnx_util import assert_close, check_node, node_model, run_interpreter
from tests.ops.reference_check import check_reference

F32 = np.float32


def _f(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(F32)


# GridSample ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample_2d(rng, mode, padding_mode, align_corners):
    x, grid = _f(rng, 2, 3, 4, 5), rng.uniform(-1.6, 1.6, (2, 3, 6, 2)).astype(F32)
    attrs = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners}
    check_node("GridSample", {"x": x, "grid": grid}, attrs, opset=20, rtol=1e-5, atol=1e-5)


def test_grid_sample_nearest_halfway(rng):
    """Halfway positions round to the even index; -1 and 1 land on edges or corner centres."""
    x = _f(rng, 1, 1, 4, 4)
    grid = np.array([-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, -1.25, 0.125], F32)
    grid = np.stack(np.meshgrid(grid, grid[::-1]), -1)[None]
    for align_corners in (0, 1):
        for padding_mode in ("zeros", "border", "reflection"):
            attrs = {"mode": "nearest", "padding_mode": padding_mode, "align_corners": align_corners}
            check_node("GridSample", {"x": x, "grid": grid}, attrs, opset=20)


@pytest.mark.parametrize("mode", ["linear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_grid_sample_3d(rng, mode, padding_mode):
    x, grid = _f(rng, 1, 2, 3, 4, 5), rng.uniform(-1.3, 1.3, (1, 2, 3, 4, 3)).astype(F32)
    attrs = {"mode": mode, "padding_mode": padding_mode, "align_corners": 1}
    check_node("GridSample", {"x": x, "grid": grid}, attrs, opset=20, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
def test_grid_sample_v16_mode_names(rng, mode):
    x, grid = _f(rng, 1, 2, 5, 4), rng.uniform(-1.2, 1.2, (1, 3, 3, 2)).astype(F32)
    check_node("GridSample", {"x": x, "grid": grid}, {"mode": mode}, opset=16, rtol=1e-5, atol=1e-5)


def test_grid_sample_float64(rng):
    x, grid = _f(rng, 1, 2, 5, 4).astype(np.float64), rng.uniform(-1.2, 1.2, (1, 3, 3, 2))
    check_node("GridSample", {"x": x, "grid": grid}, {"mode": "cubic", "padding_mode": "border"}, opset=20)


# AffineGrid ------------------------------------------------------------------------


@pytest.mark.parametrize("align_corners", [0, 1])
@pytest.mark.parametrize("size", [[2, 3, 4, 5], [2, 1, 1, 3], [2, 3, 2, 4, 3], [2, 1, 3, 1, 1]])
def test_affine_grid(rng, align_corners, size):
    dims = len(size) - 2
    theta = _f(rng, 2, dims, dims + 1)
    sizes = np.array(size, np.int64)
    check_node("AffineGrid", {"theta": theta, "size": sizes}, {"align_corners": align_corners}, rtol=1e-5, atol=1e-6)
    check_node("AffineGrid", {"theta": theta}, {"align_corners": align_corners}, initializers={"size": sizes},
               rtol=1e-5, atol=1e-6)


# DeformConv ------------------------------------------------------------------------

DEFORM_CASES = [
    ((1, 2, 5, 5), (3, 2, 3, 3), {}),
    ((2, 4, 6, 5), (4, 2, 2, 3), {"group": 2, "offset_group": 2, "pads": [1, 0, 1, 2], "strides": [2, 1]}),
    ((1, 2, 7, 6), (2, 2, 2, 2), {"dilations": [2, 2], "pads": [1, 1, 1, 1]}),
]


@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), DEFORM_CASES)
@pytest.mark.parametrize("extras", ["none", "bias", "mask"])
def test_deform_conv(rng, x_shape, w_shape, attrs, extras):
    x, w = _f(rng, *x_shape), _f(rng, *w_shape)
    kernel, groups = w_shape[2:], attrs.get("offset_group", 1)
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, attrs.get("dilations", [1] * len(kernel)))]
    pads, strides = attrs.get("pads", [0] * 2 * len(kernel)), attrs.get("strides", [1] * len(kernel))
    outs = [(n + pads[i] + pads[i + len(kernel)] - spans[i]) // strides[i] + 1 for i, n in enumerate(x_shape[2:])]
    taps = groups * int(np.prod(kernel))
    inputs = {"x": x, "w": w, "offset": _f(rng, x_shape[0], taps * len(kernel), *outs, scale=1.5)}
    names = ["x", "w", "offset"]
    if extras != "none":
        inputs["b"] = _f(rng, w_shape[0])
        names.append("b")
    if extras == "mask":
        inputs["mask"] = rng.uniform(0, 1, (x_shape[0], taps, *outs)).astype(F32)
        names.append("mask")
    check_node("DeformConv", inputs, attrs, opset=19, input_names=names, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "attrs"),
    [((1, 2, 9), (3, 2, 3), {"strides": [2], "pads": [1, 2]}), ((1, 2, 4, 5, 3), (2, 1, 2, 3, 2), {"group": 2})],
)
def test_deform_conv_zero_offsets_is_conv(rng, x_shape, w_shape, attrs):
    """onnxruntime's DeformConv is 2-D only: in 1-D and 3-D, zero offsets and a unit mask give Conv."""
    x, w = _f(rng, *x_shape), _f(rng, *w_shape)
    expected = check_node("Conv", {"x": x, "w": w}, attrs)[0]
    offset = np.zeros((1, int(np.prod(w_shape[2:])) * (len(x_shape) - 2), *expected.shape[2:]), F32)
    model = node_model("DeformConv", {"x": x, "w": w, "offset": offset}, ("y",), attrs, 19)
    assert_close(run_interpreter(model, {"x": x, "w": w, "offset": offset})[0], expected, 1e-5, 1e-5)


# Col2Im ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "block", "attrs"),
    [
        ([5, 5], [2, 2], {}),
        ([6, 7], [3, 2], {"strides": [2, 1], "pads": [1, 0, 2, 1]}),
        ([7, 6], [2, 3], {"dilations": [2, 1], "strides": [1, 2]}),
        ([4, 3, 5], [2, 2, 3], {"pads": [0, 1, 1, 1, 0, 1]}),
    ],
)
def test_col2im(rng, image, block, attrs):
    r = len(image)
    dil, pads, strides = attrs.get("dilations", [1] * r), attrs.get("pads", [0] * 2 * r), attrs.get("strides", [1] * r)
    blocks = [(n + pads[i] + pads[i + r] - (block[i] - 1) * dil[i] - 1) // strides[i] + 1 for i, n in enumerate(image)]
    x = _f(rng, 2, 3 * int(np.prod(block)), int(np.prod(blocks)))
    shapes = {"image_shape": np.array(image, np.int64), "block_shape": np.array(block, np.int64)}
    check_node("Col2Im", {"x": x}, attrs, opset=18, initializers=shapes)
    check_node("Col2Im", {"x": x, **shapes}, attrs, opset=18)


def test_col2im_checks_block_count(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, (1, 4, 5)))
    with pytest.raises(OpError, match="blocks"):
        b.op("Col2Im", x, b.const(np.array([4, 4], np.int64)), b.const(np.array([2, 2], np.int64)))


# MaxUnpool -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "attrs"),
    [
        ((1, 2, 6, 6), {"kernel_shape": [2, 2], "strides": [2, 2]}),
        ((2, 1, 7, 5), {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 0]}),
        ((1, 2, 8), {"kernel_shape": [3], "strides": [2]}),
        ((1, 1, 5, 4), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ],
)
def test_max_unpool_of_max_pool(rng, shape, attrs):
    """Unpooling MaxPool's values at its indices (flat over the whole tensor) into the pooled
    input's shape, given or (where it is the default) inferred."""
    x = _f(rng, *shape)
    values, indices = check_node("MaxPool", {"x": x}, attrs, outputs=("y", "i"))
    check_node("MaxUnpool", {"x": values, "i": indices}, attrs, opset=11,
               initializers={"shape": np.array(shape, np.int64)})
    if shape in ((1, 2, 6, 6), (1, 2, 8)):
        check_node("MaxUnpool", {"x": values, "i": indices}, attrs, opset=11)


# RoiAlign --------------------------------------------------------------------------

ROIS = np.array([[0, 0, 3, 3], [1.2, 0.5, 6.7, 4.1], [-2, -1, 9, 11], [3, 4, 3.2, 4.1], [5, 2, 2, 6]], F32)


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("transform", ["half_pixel", "output_half_pixel"])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align(rng, mode, transform, sampling_ratio):
    x = _f(rng, 2, 3, 8, 7)
    attrs = {"mode": mode, "coordinate_transformation_mode": transform, "sampling_ratio": sampling_ratio,
             "output_height": 3, "output_width": 4, "spatial_scale": 0.8}
    inputs = {"x": x, "rois": ROIS, "batch": np.array([0, 1, 0, 1, 1], np.int64)}
    check_node("RoiAlign", inputs, attrs, opset=16, rtol=1e-5, atol=1e-5)


def test_roi_align_v10(rng):
    inputs = {"x": _f(rng, 1, 2, 6, 6), "rois": ROIS, "batch": np.zeros(5, np.int64)}
    check_node("RoiAlign", inputs, {"output_height": 2, "output_width": 2}, opset=10, rtol=1e-5, atol=1e-5)


# NonMaxSuppression -----------------------------------------------------------------


def _boxes(rng, batches, n, center):
    a, b = rng.uniform(0, 10, (batches, n, 2)), rng.uniform(0, 10, (batches, n, 2))
    if center:
        return np.concatenate([a, rng.uniform(0, 4, (batches, n, 2))], -1).astype(F32)
    return np.concatenate([a, b], -1).astype(F32)[..., [0, 1, 2, 3]]


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize(("limit", "iou", "score"), [(3, 0.3, 0.2), (10, 0.0, None), (2, 0.6, None), (0, 0.5, 0.0)])
def test_non_max_suppression(rng, center, limit, iou, score):
    boxes = _boxes(rng, 2, 12, center)
    boxes[0, 3] = boxes[0, 2]  # an identical pair
    boxes[1, 4, 2:] = boxes[1, 4, :2] if not center else 0  # a degenerate box
    scores = rng.uniform(0, 1, (2, 3, 12)).astype(F32)
    scores[0, 0, 5] = scores[0, 0, 6]  # a tie
    inits = {"limit": np.array([limit], np.int64), "iou": np.array([iou], F32)}
    names = ["boxes", "scores", "limit", "iou"]
    if score is not None:
        inits["score"] = np.array([score], F32)
        names.append("score")
    attrs = {"center_point_box": center}
    check_node("NonMaxSuppression", {"boxes": boxes, "scores": scores}, attrs, opset=11, initializers=inits,
               input_names=names)


def test_non_max_suppression_defaults(rng):
    check_node("NonMaxSuppression", {"boxes": _boxes(rng, 1, 5, 0), "scores": rng.uniform(0, 1, (1, 2, 5)).astype(F32)},
               opset=10)


# CumProd, BitCast, Unsqueeze -------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize(("exclusive", "reverse"), [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("axis", [0, -1])
def test_cumprod(rng, dtype, exclusive, reverse, axis):
    x = rng.uniform(-2, 2, (4, 5)).astype(dtype) if dtype in (np.float32, np.float64) else rng.integers(-4, 5, (4, 5))
    check_node("CumProd", {"x": x.astype(dtype)}, {"exclusive": exclusive, "reverse": reverse}, opset=26,
               initializers={"axis": np.array(axis, np.int32)})


def test_cumprod_float16(rng):
    x = rng.uniform(0.5, 1.5, (3, 6)).astype(np.float16)
    check_reference("CumProd", {"x": x}, {"reverse": 1}, opset=26, initializers={"axis": np.array(1, np.int64)})


@pytest.mark.parametrize(
    ("source", "target"),
    [(np.float32, np.int32), (np.int32, np.float32), (np.uint16, np.int16), (np.float64, np.uint64),
     (np.int8, np.uint8), (np.float16, np.uint16)],
)
def test_bitcast(rng, source, target):
    x = rng.integers(0, 256, (3, 4 * np.dtype(source).itemsize), dtype=np.uint8).view(source)
    check_node("BitCast", {"x": x}, {"to": DType.from_numpy(target).onnx}, opset=26)
    check_node("BitCast", {"x": x[1:, 2]}, {"to": DType.from_numpy(target).onnx}, opset=26)
    check_node("BitCast", {"x": np.asarray(x[0, 0])}, {"to": DType.from_numpy(target).onnx}, opset=26)


def test_bitcast_bool_and_widths(rng):
    check_reference("BitCast", {"x": np.array([True, False, True])}, {"to": DType.uint8.onnx}, opset=26)
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, (2,)))
    with pytest.raises(OpError, match="bit widths differ"):
        b.op("BitCast", x, to=DType.int64.onnx)


def test_unsqueeze_scalar_axis(rng):
    x = _f(rng, 3, 4)
    check_node("Unsqueeze", {"x": x}, opset=13, initializers={"axes": np.array(-1, np.int64)})
    check_node("Unsqueeze", {"x": x, "axes": np.array(1, np.int64)}, opset=13)


def test_symbolic_dims():
    """A symbolic batch stays symbolic; data-dependent sizes get fresh symbols."""
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, ("n", 3, 8, 8)))
    grid = b.input("grid", TensorType(DType.float32, ("n", 5, 6, 2)))
    assert b.op("GridSample", x, grid).type.shape == ("n", 3, 5, 6)
    w = b.const(np.zeros((4, 3, 3, 3), F32))
    offset = b.input("offset", TensorType(DType.float32, ("n", 18, 6, 6)))
    assert b.op("DeformConv", x, w, offset).type.shape == ("n", 4, 6, 6)
    rois, batch = b.input("rois", TensorType(DType.float32, ("r", 4))), b.input("b", TensorType(DType.int64, ("r",)))
    assert b.op("RoiAlign", x, rois, batch, output_height=2, output_width=3).type.shape == ("r", 3, 2, 3)
    pooled = b.input("p", TensorType(DType.float32, ("n", 3, 4, 4)))
    indices = b.input("i", TensorType(DType.int64, ("n", 3, 4, 4)))
    assert b.op("MaxUnpool", pooled, indices, kernel_shape=[2, 2], strides=[2, 2]).type.shape == ("n", 3, 8, 8)
    image = b.input("image", TensorType(DType.int64, (2,)))
    cols = b.op("Col2Im", b.input("cols", TensorType(DType.float32, ("n", 12, 9))), image, b.const(np.array([2, 2])))
    assert cols.type.shape[:2] == ("n", 3) and all(isinstance(d, str) for d in cols.type.shape[2:])
    boxes = b.input("bx", TensorType(DType.float32, ("n", 7, 4)))
    scores = b.input("s", TensorType(DType.float32, ("n", 2, 7)))
    selected = b.op("NonMaxSuppression", boxes, scores).type.shape
    assert isinstance(selected[0], str) and selected[1] == 3
