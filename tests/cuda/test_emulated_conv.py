"""Convolutions as implicit GEMM on the cuda target (shared-memory tiles, TF32 mma.sync or exact
FP32), run in the emulator and compared with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.onnx_util import assert_close, node_model, run_ort

from .conftest import compile_cuda, emulated, needs_nvrtc
from .test_emulated_ops import tf32

pytestmark = needs_nvrtc
rng = np.random.default_rng(5)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


CONVS = {  # name: (x, attrs, w, bias): M = N*OH*OW, N = Cout, K = Cin*kh*kw, every tile partial
    "3x3_pad_bias": (f32(2, 5, 9, 11), {"pads": [1, 1, 1, 1]}, f32(20, 5, 3, 3), f32(20)),
    "3x3_stride2_asym_pad": (f32(1, 6, 13, 12), {"pads": [1, 0, 1, 2], "strides": [2, 2]}, f32(17, 6, 3, 3), None),
    "1x1": (f32(2, 24, 7, 7), {}, f32(33, 24, 1, 1), f32(33)),
    "1x1_stride2": (f32(1, 16, 10, 10), {"strides": [2, 2]}, f32(24, 16, 1, 1), None),
    "3x3_dilated": (f32(1, 4, 12, 12), {"pads": [2, 2, 2, 2], "dilations": [2, 2]}, f32(16, 4, 3, 3), None),
    "1d_pad": (f32(2, 8, 30), {"pads": [1, 1]}, f32(16, 8, 3), f32(16)),
    "grouped": (f32(1, 8, 6, 6), {"group": 2, "pads": [1, 1, 1, 1]}, f32(32, 4, 3, 3), None),
}
RULE = {
    "1x1": "tiled-matmul",  # a 1x1 convolution is a plain matrix product
    "1x1_stride2": "tiled-matmul",
    "grouped": "implicit-gemm",  # one GEMM per group: the group is a batch axis
}


def conv_model(name: str) -> tuple[onnx.ModelProto, dict[str, np.ndarray], dict[str, np.ndarray]]:
    x, attrs, w, bias = CONVS[name]
    inits = {"w": w} if bias is None else {"w": w, "b": bias}
    return node_model("Conv", {"x": x}, attrs=attrs, initializers=inits), {"x": x}, inits


def rules(module) -> list[str]:
    return [k["rule"] for k in module.metadata["cuda"]["kernels"]]


@pytest.mark.parametrize("name", sorted(CONVS))
def test_conv_implicit_gemm_fp32_exact(name, tmp_path):
    model, feeds, _ = conv_model(name)
    module = emulated(compile_cuda(model, tmp_path, name, "cuda -arch=sm_80 -fp32-exact"))
    assert rules(module) == [RULE.get(name, "implicit-gemm")]
    assert_close(module.run(None, feeds)[0], run_ort(model, feeds)[0], rtol=1e-4, atol=1e-4, what=name)


def test_conv_threads_in_reverse_order(tmp_path, monkeypatch):
    """A missing barrier between tile loads and the product would read poisoned shared memory."""
    model, feeds, _ = conv_model("3x3_stride2_asym_pad")
    monkeypatch.setenv("AIC_EMU_ORDER", "reverse")
    module = emulated(compile_cuda(model, tmp_path, "conv", "cuda -arch=sm_80 -fp32-exact"))
    assert_close(module.run(None, feeds)[0], run_ort(model, feeds)[0], rtol=1e-4, atol=1e-4, what="reversed")


@pytest.mark.parametrize("name", ["3x3_pad_bias", "1x1_stride2"])
def test_conv_tensor_cores_tf32(name, tmp_path):
    model, feeds, inits = conv_model(name)
    path = compile_cuda(model, tmp_path, name)
    module = emulated(path)
    assert rules(module) == [RULE.get(name, "implicit-gemm") + "-tf32"]
    assert b"mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32" in path.read_bytes()  # the embedded PTX
    actual = module.run(None, feeds)[0]
    # products of TF32 values are exact in float32, so the convolution of the rounded factors
    # differs only by the order of the float32 sums (the bias is added exactly in the epilogue)
    rounded = node_model("Conv", feeds, attrs=CONVS[name][1], initializers={**inits, "w": tf32(inits["w"])})
    expected = run_ort(rounded, {"x": tf32(feeds["x"])})[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    assert_close(actual, run_ort(model, feeds)[0], rtol=2e-2, atol=2e-2, what=name)  # onnxruntime CUDA's use_tf32


def test_conv_epilogue_fused(tmp_path):
    """Conv + bias + residual Add + Relu: one launch, the epilogue applied to the tile's outputs."""
    x, attrs, w, bias = CONVS["3x3_pad_bias"]
    residual = f32(2, 20, 9, 11)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], **attrs), helper.make_node("Add", ["c", "r"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]  # fmt: skip
    graph = helper.make_graph(
        nodes, "conv_add_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape),
         helper.make_tensor_value_info("r", TensorProto.FLOAT, residual.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(bias, "b")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 8
    feeds = {"x": x, "r": residual}
    module = emulated(compile_cuda(model, tmp_path, "fused", "cuda -arch=sm_80 -fp32-exact"))
    assert rules(module) == ["implicit-gemm"]
    assert_close(module.run(None, feeds)[0], run_ort(model, feeds)[0], rtol=1e-4, atol=1e-4, what="fused")


def test_conv_nvrtc_sm80_and_sm90(tmp_path):
    """Both architectures compile (cubins and PTX), and ptxas reports the kernel without spills."""
    model, feeds, _ = conv_model("3x3_pad_bias")
    module = emulated(compile_cuda(model, tmp_path, "conv", "cuda -arch=sm_80,sm_90"))
    cuda = module.metadata["cuda"]
    assert cuda["archs"] == ["sm_80", "sm_90"]
    (kernel,) = cuda["kernels"]
    for arch in ("sm_80", "sm_90"):
        ptxas = kernel["ptxas"][arch]
        assert ptxas["registers"] <= 255 and ptxas.get("spill_stores", 0) == 0, (arch, ptxas)
    assert_close(module.run(None, feeds)[0], run_ort(model, feeds)[0], rtol=2e-2, atol=2e-2, what="tf32")
