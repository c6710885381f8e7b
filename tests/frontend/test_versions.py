"""Version converters: old-opset single-node models, aic's interpreter vs onnxruntime
running the same old-opset model (vs numpy where onnxruntime has no kernel for it)."""

import numpy as np
import onnx
import pytest
from aic.frontend.onnx import load_model

from tests.onnx_util import assert_close, check_node, node_model, run_interpreter

F32 = np.float32


@pytest.fixture
def x(rng):
    return rng.standard_normal((2, 3, 4)).astype(F32)


def test_reshape_v1(x):
    check_node("Reshape", {"x": x}, {"shape": [0, -1]}, opset=1)


@pytest.mark.parametrize("opset", [1, 11])
def test_squeeze_unsqueeze_axes_attribute(rng, opset):
    a = rng.standard_normal((2, 1, 3, 1)).astype(F32)
    check_node("Squeeze", {"x": a}, {"axes": [1, 3]}, opset=opset)
    check_node("Unsqueeze", {"x": a}, {"axes": [0, 5]}, opset=opset)
    if opset == 11:
        check_node("Squeeze", {"x": a}, {"axes": [-1]}, opset=opset)
        check_node("Unsqueeze", {"x": a}, {"axes": [-1]}, opset=opset)


def test_squeeze_v1_without_axes(rng):
    check_node("Squeeze", {"x": rng.standard_normal((1, 3, 1)).astype(F32)}, opset=1)


def test_slice_v1(x):
    check_node("Slice", {"x": x}, {"starts": [1, -3], "ends": [100, -1], "axes": [1, 2]}, opset=1)
    check_node("Slice", {"x": x}, {"starts": [0, 1], "ends": [1, 3]}, opset=1)


@pytest.mark.parametrize("opset", [2, 11])
def test_split_attribute(x, opset):
    check_node("Split", {"x": x}, {"axis": 2, "split": [1, 3]}, outputs=("a", "b"), opset=opset)
    check_node("Split", {"x": x}, {"axis": -1 if opset == 11 else 2}, outputs=("a", "b"), opset=opset)


def test_split_v13_equal_parts_and_input(x):
    check_node("Split", {"x": x}, {"axis": 1}, outputs=("a", "b", "c"), opset=13)
    sizes = {"split": np.array([1, 2], np.int64)}
    check_node("Split", {"x": x}, {"axis": 1}, outputs=("a", "b"), opset=13, initializers=sizes)


def test_split_v18_num_outputs(rng):
    a = rng.standard_normal((7, 2)).astype(F32)
    check_node("Split", {"x": a}, {"num_outputs": 3}, outputs=("a", "b", "c"), opset=18)


@pytest.mark.parametrize(
    "op",
    [
        "ReduceSum",
        "ReduceMean",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceSumSquare",
    ],
)
@pytest.mark.parametrize("opset", [1, 11, 12])
def test_reductions_axes_attribute(rng, op, opset):
    a = rng.uniform(0.5, 2.0, (2, 3, 4)).astype(F32)
    check_node(op, {"x": a}, {"axes": [0, 2], "keepdims": 0}, opset=opset, rtol=1e-5)
    check_node(op, {"x": a}, {"keepdims": 1}, opset=opset, rtol=1e-5)
    if opset >= 11:
        check_node(op, {"x": a}, {"axes": [-1]}, opset=opset, rtol=1e-5)


@pytest.mark.parametrize("opset", [2, 11])
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(x, opset, mode):
    pads = [0, 1, 2, 0, 2, 1]
    if opset == 2:
        check_node("Pad", {"x": x}, {"pads": pads, "mode": mode, "value": 1.5}, opset=2)
    else:
        inits = {"pads": np.array(pads, np.int64), "value": np.array(1.5, F32)}
        check_node("Pad", {"x": x}, {"mode": mode}, opset=11, initializers=inits)


def test_pad_v1_paddings(x):
    """Pad-1 named the pads `paddings` (no onnxruntime kernel: numpy reference)."""
    (y,) = run_interpreter(
        node_model("Pad", {"x": x}, attrs={"paddings": [0, 1, 0, 0, 0, 2], "value": 2.0}, opset=1), {"x": x}
    )
    assert_close(y, np.pad(x, ((0, 0), (1, 0), (0, 2)), constant_values=2.0))


def test_pad_v2_int_data_takes_float_value(rng):
    """onnxruntime's Pad-2 is float-only; numpy reference."""
    a = rng.integers(-5, 5, (2, 3)).astype(np.int32)
    (y,) = run_interpreter(node_model("Pad", {"x": a}, attrs={"pads": [1, 0, 0, 2], "value": 7.0}, opset=2), {"x": a})
    assert_close(y, np.pad(a, ((1, 0), (0, 2)), constant_values=7))


@pytest.mark.parametrize("opset", [6, 11])
def test_clip_bounds(x, opset):
    if opset == 6:
        check_node("Clip", {"x": x}, {"min": -0.5, "max": 0.25}, opset=6)
        check_node("Clip", {"x": x}, {"max": 0.25}, opset=6)
    else:
        check_node("Clip", {"x": x}, opset=11, initializers={"lo": np.array(-0.5, F32)})
        check_node("Clip", {"x": x}, opset=11, initializers={"hi": np.array(0.5, F32)}, input_names=["x", "", "hi"])


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize(("opset", "axis"), [(1, None), (1, 0), (1, 2), (11, None), (11, 0), (11, 1), (11, -1)])
def test_softmax_family_2d_coercion(x, op, opset, axis):
    attrs = {} if axis is None else {"axis": axis}
    check_node(op, {"x": x}, attrs, opset=opset, rtol=1e-5)


def test_softmax_v11_dynamic_shape_uses_shape_of_input(rng):
    model = node_model("Softmax", {"x": np.zeros((2, 3, 4), F32)}, opset=11)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    graph = load_model(model)
    assert graph.outputs[0].type.shape == ("batch", 3, 4)
    a = rng.standard_normal((5, 3, 4)).astype(F32)
    (y,) = run_interpreter(model, {"x": a})
    e = np.exp(a.reshape(5, 12) - a.reshape(5, 12).max(1, keepdims=True))
    assert_close(y, (e / e.sum(1, keepdims=True)).reshape(5, 3, 4), rtol=1e-5)


@pytest.mark.parametrize("opset", [7, 10])
def test_dropout_attribute_forms(x, opset):
    """The mask follows the ONNX reference (all kept: ones, or true from opset 10);
    onnxruntime's old Dropout kernels return zeros instead."""
    check_node("Dropout", {"x": x}, {"ratio": 0.3}, opset=opset)
    model = node_model("Dropout", {"x": x}, ("y", "mask"), {"ratio": 0.3}, opset=opset)
    y, mask = run_interpreter(model, {"x": x})
    assert_close(y, x)
    assert_close(mask, np.ones(x.shape, dtype=bool if opset >= 10 else F32))


def test_dropout_v6_is_test(x):
    (y,) = run_interpreter(node_model("Dropout", {"x": x}, attrs={"is_test": 1, "ratio": 0.5}, opset=6), {"x": x})
    assert_close(y, x)


def test_dropout_v12(x):
    check_node("Dropout", {"x": x}, outputs=("y", "mask"), opset=12)


def _bn_inputs(rng, shape):
    return {
        "scale": rng.uniform(0.5, 1.5, shape).astype(F32),
        "b": rng.standard_normal(shape).astype(F32),
        "mean": rng.standard_normal(shape).astype(F32),
        "var": rng.uniform(0.5, 1.5, shape).astype(F32),
    }


def _bn_reference(a, p, eps):
    p = {k: v.astype(np.float64) for k, v in p.items()}
    return ((a - p["mean"]) / np.sqrt(p["var"] + eps) * p["scale"] + p["b"]).astype(a.dtype)


@pytest.mark.parametrize("opset", [7, 9])
def test_batchnorm_spatial(rng, opset):
    a = rng.standard_normal((2, 3, 4, 5)).astype(F32)
    check_node("BatchNormalization", {"x": a}, {"epsilon": 1e-3}, opset=opset, initializers=_bn_inputs(rng, (3,)))


def test_batchnorm_v6_is_test(rng):
    """onnxruntime has no BatchNormalization-6 kernel: numpy reference."""
    a, params = rng.standard_normal((2, 3, 4)).astype(F32), _bn_inputs(rng, (3,))
    model = node_model("BatchNormalization", {"x": a}, attrs={"is_test": 1}, opset=6, initializers=params)
    (y,) = run_interpreter(model, {"x": a})
    assert_close(y, _bn_reference(a, {k: v[:, None] for k, v in params.items()}, 1e-5), rtol=1e-5)


@pytest.mark.parametrize("constant_params", [True, False])
def test_batchnorm_per_activation(rng, constant_params):
    """spatial=0: one scale/bias/mean/var per activation [C, H, W]; onnxruntime no longer runs it."""
    a = rng.standard_normal((2, 3, 4)).astype(F32)
    params = _bn_inputs(rng, (3, 4))
    inputs, inits = ({"x": a}, params) if constant_params else ({"x": a} | params, {})
    model = node_model("BatchNormalization", inputs, attrs={"spatial": 0, "epsilon": 1e-2}, opset=7, initializers=inits)
    (y,) = run_interpreter(model, inputs)
    assert_close(y, _bn_reference(a, params, 1e-2), rtol=1e-5)


def test_gemm_v6_broadcast(rng):
    """onnxruntime has no Gemm-6 kernel: numpy reference."""
    a, b, c = (rng.standard_normal(s).astype(F32) for s in ((3, 4), (4, 5), (5,)))
    model = node_model(
        "Gemm", {"a": a}, attrs={"broadcast": 1, "alpha": 0.5, "beta": 2.0}, opset=6, initializers={"b": b, "c": c}
    )
    (y,) = run_interpreter(model, {"a": a})
    assert_close(y, 0.5 * a @ b + 2.0 * c, rtol=1e-5)


def test_topk_v1(x):
    check_node("TopK", {"x": x}, {"k": 2, "axis": 1}, outputs=("values", "indices"), opset=1)


def test_cast_v1_type_name(x):
    model = node_model("Cast", {"x": x * 10}, attrs={"to": "INT32"}, opset=1)
    (y,) = run_interpreter(model, {"x": x * 10})
    assert_close(y, (x * 10).astype(np.int32))


def test_cast_v6(x):
    check_node("Cast", {"x": x * 10}, {"to": onnx.TensorProto.INT64}, opset=6)


def test_constant_of_shape(rng):
    value = onnx.numpy_helper.from_array(np.array([2.5], F32), "value")
    check_node("ConstantOfShape", {}, {"value": value}, opset=9, initializers={"shape": np.array([2, 3], np.int64)})


@pytest.mark.parametrize(
    ("attr", "value"),
    [
        ("value_float", 1.5),
        ("value_floats", [1.0, 2.0]),
        ("value_int", 3),
        ("value_ints", [1, 2, 3]),
        ("value", onnx.numpy_helper.from_array(np.arange(6, dtype=np.int32).reshape(2, 3), "v")),
    ],
)
def test_constant_forms(attr, value):
    model = node_model("Constant", {}, attrs={attr: value}, opset=13)
    graph = load_model(model)
    assert graph.outputs[0].is_const and not graph.nodes
    check_node("Constant", {}, {attr: value}, opset=13)


@pytest.mark.parametrize("opset", [9, 10])
def test_scatter_is_scatter_elements(rng, opset):
    data = rng.standard_normal((3, 4)).astype(F32)
    inits = {"idx": np.array([[1, 0, 2, 0]], np.int64), "upd": rng.standard_normal((1, 4)).astype(F32)}
    check_node("Scatter", {"x": data}, {"axis": 0}, opset=opset, initializers=inits)


def test_concat_v1_default_axis(rng):
    """onnxruntime has no Concat-1 kernel: numpy reference."""
    a, b = rng.standard_normal((2, 3)).astype(F32), rng.standard_normal((2, 2)).astype(F32)
    (y,) = run_interpreter(node_model("Concat", {"a": a, "b": b}, opset=1), {"a": a, "b": b})
    assert_close(y, np.concatenate([a, b], axis=1))


@pytest.mark.parametrize("opset", [18, 21])
def test_group_normalization_per_group_and_per_channel(rng, opset):
    a = rng.standard_normal((2, 6, 3, 3)).astype(F32)
    size = 2 if opset == 18 else 6
    inits = {"scale": rng.uniform(0.5, 1.5, size).astype(F32), "bias": rng.standard_normal(size).astype(F32)}
    check_node("GroupNormalization", {"x": a}, {"num_groups": 2}, opset=opset, initializers=inits, rtol=1e-4, atol=1e-5)


def test_group_normalization_v18_runtime_scale(rng):
    a = rng.standard_normal((2, 4, 3)).astype(F32)
    inputs = {"x": a, "scale": rng.uniform(0.5, 1.5, 2).astype(F32), "bias": rng.standard_normal(2).astype(F32)}
    check_node("GroupNormalization", inputs, {"num_groups": 2}, opset=18, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
def test_legacy_broadcast_with_axis(rng, op):
    """Add-6 with broadcast=1, axis=1: B [3] lines up with A's axis 1 (onnxruntime dropped these kernels)."""
    a, b = rng.standard_normal((2, 3, 4)).astype(F32), rng.uniform(1, 2, 3).astype(F32)
    model = node_model(op, {"a": a, "b": b}, attrs={"broadcast": 1, "axis": 1}, opset=6)
    (y,) = run_interpreter(model, {"a": a, "b": b})
    fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
    assert_close(y, fn(a, b[:, None]), rtol=1e-6)


def test_legacy_broadcast_trailing(rng):
    a, b = rng.standard_normal((2, 3, 4)).astype(F32), rng.standard_normal(4).astype(F32)
    (y,) = run_interpreter(node_model("Mul", {"a": a, "b": b}, attrs={"broadcast": 1}, opset=1), {"a": a, "b": b})
    assert_close(y, a * b)


@pytest.mark.parametrize("opset", [7, 8, 10, 11, 12])
def test_pools_of_older_opsets_convert_directly(rng, opset):
    """MaxPool/AveragePool gained attributes over the versions, each defaulting to the older behaviour."""
    a = rng.standard_normal((1, 2, 5, 5)).astype(F32)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    check_node("MaxPool", {"x": a}, attrs, opset=opset)
    check_node("AveragePool", {"x": a}, attrs | {"count_include_pad": 1}, opset=opset)
    check_node("AveragePool", {"x": a}, attrs, opset=opset)


def test_gelu_and_layer_normalization_from_their_opsets(rng):
    a = rng.standard_normal((2, 3, 8)).astype(F32)
    check_node("Gelu", {"x": a}, opset=20, rtol=1e-5)
    check_node("Gelu", {"x": a}, {"approximate": "tanh"}, opset=20, rtol=1e-5)
    inits = {"scale": rng.uniform(0.5, 1.5, 8).astype(F32), "bias": rng.standard_normal(8).astype(F32)}
    check_node("LayerNormalization", {"x": a}, {"epsilon": 1e-3}, opset=17, initializers=inits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scales", [[1, 1, 2, 3], [1, 1, 1.7, 1.25], [1, 1, 0.6, 0.5], [1, 1, 1.5, 0.8]])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_v10(rng, scales, mode):
    """Asymmetric sampling; nearest rounds down on growing axes and up on shrinking ones (as onnxruntime)."""
    a = rng.standard_normal((1, 2, 5, 7)).astype(F32)
    inits = {"scales": np.array(scales, F32)}
    check_node("Resize", {"x": a}, {"mode": mode}, opset=10, initializers=inits)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample(rng, mode):
    a = rng.standard_normal((1, 2, 3, 4)).astype(F32)
    scales = [1.0, 1.0, 2.0, 1.5]
    check_node("Upsample", {"x": a}, {"mode": mode, "scales": scales}, opset=7)
    check_node("Upsample", {"x": a}, {"mode": mode}, opset=9, initializers={"scales": np.array(scales, F32)})


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize(
    "attrs",
    [
        {"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn"},
        {"mode": "linear", "coordinate_transformation_mode": "align_corners"},
        {"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1},
    ],
)
def test_resize_empty_roi_and_scales(rng, opset, attrs):
    a = rng.standard_normal((1, 1, 4, 6)).astype(F32)
    empty = np.zeros(0, F32)
    by_scales = {"roi": empty, "scales": np.array([1, 1, 1.5, 0.5], F32)}
    check_node("Resize", {"x": a}, attrs, opset=opset, initializers=by_scales, rtol=1e-5, atol=1e-5)
    by_sizes = {"roi": empty, "scales": empty, "sizes": np.array([1, 1, 7, 3], np.int64)}
    check_node("Resize", {"x": a}, attrs, opset=opset, initializers=by_sizes, rtol=1e-5, atol=1e-5)


def test_resize_v13_omitted_inputs(rng):
    a = rng.standard_normal((1, 1, 4, 6)).astype(F32)
    sizes = {"sizes": np.array([1, 1, 8, 3], np.int64)}
    check_node("Resize", {"x": a}, {"mode": "linear"}, opset=13, initializers=sizes, input_names=["x", "", "", "sizes"])
