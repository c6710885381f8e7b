"""`aic inspect --kernels / --loop-ir / --llvm`, and the per-kernel files of AIC_DUMP_IR."""

import json

import numpy as np
import onnx
import pytest
from aic.compiler.pipeline import compile_model
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from aic.cli import main

rng = np.random.default_rng(5)


@pytest.fixture
def model_path(tmp_path) -> str:
    """x[batch, 16] @ w1 + b -> Relu -> Conv-free second MatMul, then Softmax over the rows."""
    weights = [
        nh.from_array(rng.standard_normal((16, 32)).astype(np.float32), "w1"),
        nh.from_array(rng.standard_normal(32).astype(np.float32), "b1"),
        nh.from_array(rng.standard_normal((32, 8)).astype(np.float32), "w2"),
    ]
    nodes = [
        h.make_node("MatMul", ["x", "w1"], ["m"], name="mm1"),
        h.make_node("Add", ["m", "b1"], ["a"], name="bias"),
        h.make_node("Relu", ["a"], ["r"], name="relu"),
        h.make_node("MatMul", ["r", "w2"], ["y0"], name="mm2"),
        h.make_node("Softmax", ["y0"], ["y"], name="soft"),
    ]
    x = h.make_tensor_value_info("x", T.FLOAT, ["batch", 16])
    graph = h.make_graph(nodes, "net", [x], [h.make_tensor_value_info("y", T.FLOAT, ["batch", 8])], weights)
    path = tmp_path / "net.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), path)
    return str(path)


def run(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_kernels_lists_groups_schedules_flops_and_buffers(capsys, model_path):
    out = run(capsys, "inspect", model_path, "--kernels", "--dim", "batch=4")
    assert "kernel calls of" in out and "arena" in out
    assert "k0_matmul_add_relu: MatMul+Add+Relu" in out
    assert "nodes: MatMul mm1, Add bias, Relu relu" in out
    assert "schedule: micro_kernel(" in out and "cache_pack(input 1," in out
    assert "x (input)" in out and "(weight)" in out
    assert "fusion refused: MatMul 'mm2' not fused into Softmax 'soft'" in out


def test_kernels_as_json(capsys, model_path):
    data = json.loads(run(capsys, "inspect", model_path, "--kernels", "--json", "--dim", "batch=4"))
    calls = data["kernels"]["kernel_calls"]
    first = calls[0]
    assert first["group"] == "MatMul+Add+Relu" and first["nodes"] == ["MatMul mm1", "Add bias", "Relu relu"]
    assert first["flops"] == 2 * 4 * 16 * 32 + 2 * 4 * 32  # the product, the bias add and the Relu
    assert first["bytes"] == sum(a["bytes"] for a in first["args"]) and first["bytes"] >= 4 * (4 * 16 + 16 * 32)
    arena = [a for c in calls for a in c["args"] if a["kind"] == "arena"]
    assert arena and all(a["offset"] + a["bytes"] <= data["kernels"]["arena_bytes"] for a in arena)
    assert data["ops"]["MatMul"] == 2  # the summary is still there


def test_one_kernels_loop_ir_and_llvm_ir(capsys, model_path):
    loop_ir = run(capsys, "inspect", model_path, "--loop-ir", "k0_matmul_add_relu", "--dim", "batch=4")
    assert loop_ir.startswith("kernel k0_matmul_add_relu(")
    llvm_ir = run(capsys, "inspect", model_path, "--llvm", "k0_matmul_add_relu", "--dim", "batch=4")
    assert "define void @aic_k_k0_matmul_add_relu(" in llvm_ir and "fma" in llvm_ir
    assert main(["inspect", model_path, "--loop-ir", "k9_nothing", "--dim", "batch=4"]) == 1
    assert "no kernel named 'k9_nothing'; the kernels are k0_matmul_add_relu" in capsys.readouterr().err


def test_dump_ir_writes_each_kernels_loop_ir_and_llvm_ir(tmp_path, monkeypatch, model_path):
    monkeypatch.setenv("AIC_DUMP_IR", str(tmp_path / "dump"))
    compile_model(model_path, output=tmp_path / "net.so", shapes={"batch": 2})
    kernels = tmp_path / "dump" / "kernels"
    loops = sorted(p.stem for p in kernels.glob("*.loop"))
    assert "k0_matmul_add_relu" in loops
    assert sorted(p.stem for p in kernels.glob("*.ll")) == loops
    assert (kernels / "k0_matmul_add_relu.loop").read_text().startswith("kernel k0_matmul_add_relu(")
    assert "void @aic_k_k0_matmul_add_relu(" in (kernels / "k0_matmul_add_relu.ll").read_text()
