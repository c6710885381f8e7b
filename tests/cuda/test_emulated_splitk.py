"""Split-K on the cuda target (compiler/schedule_gpu_splitk.py): contractions with few output tiles and
a long K run as partial tiles per K slice plus a reduce launch with the epilogue, emulated and
compared with onnxruntime; large products keep one launch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from aic.codegen.target import Target
from aic.compiler.cuda_build import render_cuda
from aic.compiler.pipeline import lower_model
from onnx import TensorProto, helper

from aic.cli import main
from tests.onnx_util import assert_close, node_model, run_ort

from .conftest import compile_cuda, emulated, needs_nvrtc

pytestmark = needs_nvrtc
rng = np.random.default_rng(10)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def resnet_fc() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """ResNet-50's classifier at batch 1: 16 tiles of 64 columns, K = 2048."""
    a = f32(1, 2048)
    return node_model("MatMul", {"a": a}, initializers={"w": f32(2048, 1000) / 40}), {"a": a}


def gemm_bias_relu() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """Gemm (transB) + bias + Relu: 2 x 3 tiles, K = 1024, the epilogue in the reduce launch."""
    a = f32(70, 1024)
    nodes = [helper.make_node("Gemm", ["a", "w", "c"], ["g"], transB=1), helper.make_node("Relu", ["g"], ["y"])]
    graph = helper.make_graph(
        nodes, "gemm_relu", [helper.make_tensor_value_info("a", TensorProto.FLOAT, a.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(f32(136, 1024) / 30, "w"), onnx.numpy_helper.from_array(f32(136), "c")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 8
    return model, {"a": a}


def conv_7x7() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A 3x3 convolution at 7x7 with 512 input channels (implicit GEMM: M = 49, K = 4608) + bias + residual
    Add + Relu, as ResNet-50's last stage: the epilogue runs in the reduce launch."""
    x, residual = f32(1, 512, 7, 7), f32(1, 96, 7, 7)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "r"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]  # fmt: skip
    graph = helper.make_graph(
        nodes, "conv_add_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape),
         helper.make_tensor_value_info("r", TensorProto.FLOAT, residual.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(f32(96, 512, 3, 3) / 60, "w"), onnx.numpy_helper.from_array(f32(96), "b")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 8
    return model, {"x": x, "r": residual}


def batched() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A batched MatMul of two inputs: the batch is a grid axis of both launches (3 tiles, K = 1024)."""
    feeds = {"a": f32(3, 20, 1024), "b": f32(3, 1024, 40)}
    return node_model("MatMul", feeds), feeds


def rules(module) -> list[str]:
    return [k["rule"] for k in module.metadata["cuda"]["kernels"]]


CASES = {  # name: (model, the rules of its launches with -fp32-exact)
    "resnet_fc": (resnet_fc, ["tiled-matmul-splitk8", "splitk-reduce"]),
    "gemm_bias_relu": (gemm_bias_relu, ["tiled-matmul-splitk16", "splitk-reduce"]),
    "conv_7x7_512": (conv_7x7, ["implicit-gemm-splitk32", "splitk-reduce"]),
    "batched": (batched, ["tiled-matmul-splitk16", "splitk-reduce"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_splitk_fp32_exact(name, tmp_path):
    make, expected_rules = CASES[name]
    model, feeds = make()
    module = emulated(compile_cuda(model, tmp_path, name, "cuda -arch=sm_80 -fp32-exact"))
    assert rules(module) == expected_rules
    assert 0 < module.metadata["cuda"]["splitk_workspace_bytes"] <= module.metadata["arena_bytes"]
    assert_close(module.run(None, feeds)[0], run_ort(model, feeds)[0], rtol=1e-4, atol=1e-4, what=name)


def test_splitk_threads_in_reverse_order(tmp_path, monkeypatch):
    """A missing barrier in the sliced K loop, or a reduce reading an unwritten partial, shows here."""
    model, feeds = conv_7x7()
    monkeypatch.setenv("AIC_EMU_ORDER", "reverse")
    module = emulated(compile_cuda(model, tmp_path, "conv", "cuda -arch=sm_80 -fp32-exact"))
    assert_close(module.run(None, feeds)[0], run_ort(model, feeds)[0], rtol=1e-4, atol=1e-4, what="reversed")


def test_splitk_with_a_run_time_k(tmp_path):
    """K is a run-time size (the sequence of an attention product): the slices are cut at run time, the
    last ones shorter or empty."""
    feeds = {"a": f32(16, 1000), "b": f32(1000, 64)}
    model = node_model("MatMul", feeds)
    for name in "ab":
        dims = next(i for i in model.graph.input if i.name == name).type.tensor_type.shape.dim
        dims[1 if name == "a" else 0].dim_param = "seq"
    ranges = {"seq": (1, 1024, 1000)}
    module = emulated(compile_cuda(model, tmp_path, "mm", "cuda -arch=sm_80 -fp32-exact", shapes=ranges))
    assert rules(module)[-2:] == ["tiled-matmul-splitk13", "splitk-reduce"]  # 63 K steps at the opt size: 5 a slice
    for seq in (1, 100, 1000):
        part = {"a": feeds["a"][:, :seq].copy(), "b": feeds["b"][:seq].copy()}
        assert_close(module.run(None, part)[0], run_ort(model, part)[0], rtol=1e-4, atol=1e-4, what=f"seq {seq}")


def test_splitk_tf32_sm80_and_sm90(tmp_path, capsys):
    """TF32 tensor cores: NVRTC compiles both launches for both architectures without spills, and
    `aic inspect --kernels` names their rules."""
    model, feeds = gemm_bias_relu()
    path = compile_cuda(model, tmp_path, "gemm", "cuda -arch=sm_80,sm_90")
    module = emulated(path)
    assert rules(module) == ["tiled-matmul-tf32-splitk16", "splitk-reduce"]
    assert main(["inspect", str(path), "--kernels"]) == 0
    listed = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("k0_")]
    assert listed == rules(module)
    for kernel in module.metadata["cuda"]["kernels"]:
        for arch in ("sm_80", "sm_90"):
            ptxas = kernel["ptxas"][arch]
            assert ptxas["registers"] <= 255 and ptxas.get("spill_stores", 0) == 0, (kernel["name"], arch, ptxas)
    assert_close(module.run(None, feeds)[0], run_ort(model, feeds)[0], rtol=2e-2, atol=2e-2, what="tf32")


def test_splitk_float16(tmp_path):
    """16-bit factors on m16n8k16 tensor cores, split along K; float16 output rounded after the sum."""
    a = f32(1, 1024).astype(np.float16)
    model = node_model("MatMul", {"a": a}, initializers={"w": (f32(1024, 200) / 30).astype(np.float16)})
    module = emulated(compile_cuda(model, tmp_path, "f16"))
    assert rules(module) == ["tiled-matmul-f16-splitk16", "splitk-reduce"]
    expected = run_ort(model, {"a": a})[0].astype(np.float32)
    assert_close(module.run(None, {"a": a})[0].astype(np.float32), expected, rtol=2e-3, atol=2e-3, what="f16")


def test_splitk_with_a_run_time_batch(tmp_path):
    """M is a run-time size: S chosen at the opt batch, the workspace planned for the largest."""
    model, _ = resnet_fc()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    module = emulated(compile_cuda(model, tmp_path, "fc", "cuda -arch=sm_80 -fp32-exact", shapes={"batch": (1, 40, 1)}))
    assert {"tiled-matmul-splitk8", "splitk-reduce"} <= set(rules(module))
    for batch in (1, 3, 40):
        feeds = {"a": f32(batch, 2048)}
        assert_close(module.run(None, feeds)[0], run_ort(model, feeds)[0], rtol=1e-4, atol=1e-4, what=f"batch {batch}")


SHAPES = [((512, 512, 512), False), ((64, 128, 256), False), ((64, 2048, 128), True)]


@pytest.mark.parametrize(("shape", "split"), SHAPES)
def test_splitk_only_for_few_tiles_and_long_k(shape, split):
    """(M, K, N): 64 tiles of a 512 x 512 product are enough blocks; K = 128 is too short to split."""
    m, k, n = shape
    model = node_model("MatMul", {"a": f32(m, k)}, initializers={"w": f32(k, n)})
    scheduled, _ = render_cuda(lower_model(model, "cuda -arch=sm_80"), Target.parse("cuda -arch=sm_80"))
    chosen = [kernel.attrs["gpu_rule"] for kernel in scheduled.kernels]
    assert any("splitk" in r for r in chosen) == split, chosen
