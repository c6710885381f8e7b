"""The `aic` command line: --version, --help, and `aic inspect` text, --json and --ir."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from aic.compiler.summary import evaluate_dim
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from aic import __version__
from aic.cli import main

F32 = np.float32


def save(tmp_path, nodes, inputs, outputs, weights, name="model.onnx") -> str:
    graph = h.make_graph(nodes, "net", inputs, outputs, weights)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, path)
    return str(path)


@pytest.fixture
def mlp_path(tmp_path, rng):
    """x[batch,16] @ w1[16,32] + b1 -> Relu -> @ w2[32,4]: 2*16*32 + 32 + 32 + 2*32*4 = 1344 FLOPs per row."""
    weights = [
        nh.from_array(rng.standard_normal((16, 32)).astype(F32), "w1"),
        nh.from_array(rng.standard_normal(32).astype(F32), "b1"),
        nh.from_array(rng.standard_normal((32, 4)).astype(F32), "w2"),
    ]
    nodes = [
        h.make_node("MatMul", ["x", "w1"], ["h"]),
        h.make_node("Add", ["h", "b1"], ["h1"]),
        h.make_node("Relu", ["h1"], ["r"]),
        h.make_node("MatMul", ["r", "w2"], ["y"]),
    ]
    x = h.make_tensor_value_info("x", T.FLOAT, ["batch", 16])
    return save(tmp_path, nodes, [x], [h.make_tensor_value_info("y", T.FLOAT, ["batch", 4])], weights)


@pytest.fixture
def cnn_path(tmp_path, rng):
    weights = [
        nh.from_array(rng.standard_normal((4, 3, 3, 3)).astype(F32), "k"),
        nh.from_array(rng.standard_normal(4).astype(F32), "kb"),
        nh.from_array(rng.standard_normal((2, 4)).astype(F32), "fc"),
    ]
    nodes = [
        h.make_node("Conv", ["x", "k", "kb"], ["c"], pads=[1, 1, 1, 1]),
        h.make_node("Relu", ["c"], ["r"]),
        h.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        h.make_node("GlobalAveragePool", ["p"], ["g"]),
        h.make_node("Flatten", ["g"], ["f"]),
        h.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    x = h.make_tensor_value_info("x", T.FLOAT, [1, 3, 8, 8])
    return save(tmp_path, nodes, [x], [h.make_tensor_value_info("y", T.FLOAT, [1, 2])], weights, "cnn.onnx")


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version_and_help_through_python_m():
    version = subprocess.run([sys.executable, "-m", "aic.cli", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"aic {__version__}"
    usage = subprocess.run([sys.executable, "-m", "aic.cli", "--help"], capture_output=True, text=True, check=True)
    assert "inspect" in usage.stdout and "usage: aic" in usage.stdout


def test_no_command_prints_help(capsys):
    code, out, _ = run_main(capsys)
    assert code == 2 and "usage: aic" in out


def test_inspect_text(capsys, mlp_path):
    code, out, err = run_main(capsys, "inspect", mlp_path)
    assert code == 0 and not err
    lines = out.splitlines()
    assert lines[:5] == ["graph net (opset 17)", "inputs:", "  x: f32[batch,16]", "outputs:", "  y: f32[batch,4]"]
    assert "nodes: 4" in lines
    ops = lines[lines.index("ops:") + 1 : lines.index("ops:") + 4]
    assert [line.split() for line in ops] == [["MatMul", "2"], ["Add", "1"], ["Relu", "1"]]
    assert "params: 672 (2.62 KiB)" in lines
    assert "flops: 1,344 (1.34 KFLOP); symbols bound to 1: batch" in lines


def test_inspect_json(capsys, mlp_path):
    code, out, _ = run_main(capsys, "inspect", mlp_path, "--json", "--dim", "batch=8")
    assert code == 0
    summary = json.loads(out)
    assert summary["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 16]}]
    assert summary["outputs"] == [{"name": "y", "dtype": "float32", "shape": ["batch", 4]}]
    assert summary["ops"] == {"MatMul": 2, "Add": 1, "Relu": 1}
    assert (summary["nodes"], summary["params"], summary["param_bytes"]) == (4, 672, 672 * 4)
    assert summary["flops"] == 8 * 1344 and summary["flops_bound_symbols"] == []


def test_inspect_cnn(capsys, cnn_path):
    code, out, _ = run_main(capsys, "inspect", cnn_path, "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["ops"] == {
        op: 1 for op in sorted(["Conv", "Relu", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm"])
    }
    assert summary["params"] == 4 * 3 * 3 * 3 + 4 + 2 * 4
    conv = 2 * 4 * 8 * 8 * 3 * 3 * 3
    assert summary["flops"] >= conv + 2 * 4 * 2, "at least the convolution's and the Gemm's multiply-adds"
    assert summary["flops_bound_symbols"] == []


def test_inspect_ir(capsys, mlp_path):
    code, out, _ = run_main(capsys, "inspect", mlp_path, "--ir")
    assert code == 0
    assert out.startswith("graph net(%x: f32[batch,16]) {")
    assert "%y = MatMul(%r, %w2)  # f32[batch,4]" in out


def test_inspect_errors(capsys, tmp_path, mlp_path):
    code, _, err = run_main(capsys, "inspect", str(tmp_path / "missing.onnx"))
    assert code == 1 and err.strip() == f"aic: error: {tmp_path / 'missing.onnx'}: no such model file"
    (tmp_path / "junk.onnx").write_bytes(b"\x0a\xff\xff")
    code, _, err = run_main(capsys, "inspect", str(tmp_path / "junk.onnx"))
    assert code == 1 and "not an ONNX model" in err and "Traceback" not in err
    code, _, err = run_main(capsys, "inspect", mlp_path, "--dim", "batch")
    assert code == 1 and "--dim expects SYMBOL=N" in err


def test_console_script_runs_inspect(mlp_path):
    result = subprocess.run(
        [sys.executable, "-m", "aic.cli", "inspect", mlp_path, "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout)["nodes"] == 4


def test_evaluate_dim_binds_symbols():
    bound: set[str] = set()
    assert evaluate_dim("2*batch*seq", {"seq": 5}, bound) == 10 and bound == {"batch"}
    assert evaluate_dim("((h-3)//2+1)", {"h": 9}, set()) == 4
    assert evaluate_dim("(ceil(n/2))", {"n": 5}, set()) == 3
    assert evaluate_dim("x.y", {}, set()) is None


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "models" / "small_cnn.onnx"


def test_inspect_optimised_json_and_passes(capsys):
    cnn_path = EXAMPLE
    assert main(["inspect", str(cnn_path), "-O2", "--json"]) == 0
    optimised = json.loads(capsys.readouterr().out)
    assert main(["inspect", str(cnn_path), "--json"]) == 0
    original = json.loads(capsys.readouterr().out)
    assert "BatchNormalization" in original["ops"] and "BatchNormalization" not in optimised["ops"]
    reorders = sum(optimised["ops"].get(op, 0) for op in ("BlockChannels", "UnblockChannels"))  # layout edges
    assert optimised["nodes"] - reorders < original["nodes"]
    assert main(["inspect", str(cnn_path), "-O2", "--passes"]) == 0
    out = capsys.readouterr().out
    assert "fold-batchnorm" in out and "ms" in out
    assert main(["inspect", str(cnn_path), "-O2", "--disable-pass", "fold-batchnorm", "--json"]) == 0
    assert "BatchNormalization" in json.loads(capsys.readouterr().out)["ops"]


def test_inspect_passes_needs_a_level(capsys, cnn_path):
    assert main(["inspect", str(cnn_path), "--passes"]) == 1
    assert "-O" in capsys.readouterr().err
