"""TensorBoard export: the event files hold the graphs, fused groups as name scopes."""

from __future__ import annotations

import onnx
import pytest

from aic.cli import main

from .models import mlp

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator", reason="tensorboard is not installed (aic[test])"
)


def read_graph(folder):
    acc = event_accumulator.EventAccumulator(str(folder))
    acc.Reload()
    return acc.Graph()


def test_inspect_writes_graphs_before_and_after_passes(tmp_path, capsys):
    model = tmp_path / "mlp.onnx"
    onnx.save(mlp(), model)
    logdir = tmp_path / "runs"
    assert main(["inspect", str(model), "--tensorboard", str(logdir)]) == 0
    assert "tensorboard --logdir" in capsys.readouterr().out
    before = {n.name: n for n in read_graph(logdir / "input").node}
    assert before["fc1"].op == "MatMul" and list(before["fc1"].input) == ["inputs/x", "weights/W1"]
    assert before["inputs/x"].op == "Placeholder" and before["outputs/y"].input == ["fc3"]
    shape = before["fc1"].attr["_output_shapes"].list.shape[0]
    assert [d.size for d in shape.dim] == [4, 32]
    after = {n.name: n for n in read_graph(logdir / "optimized_O2").node}
    scoped = sorted(name for name in after if name.startswith("k0"))
    assert scoped == [
        "k000_MatMul_Add_Relu/bias1", "k000_MatMul_Add_Relu/fc1", "k000_MatMul_Add_Relu/relu1",
        "k001_MatMul_Relu/fc2", "k001_MatMul_Relu/relu2", "k002_MatMul/fc3",
    ]  # fmt: skip
    assert list(after["k001_MatMul_Relu/fc2"].input) == ["k000_MatMul_Add_Relu/relu1", "weights/W2"]


def test_tensorboard_error_for_a_missing_model(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "none.onnx"), "--tensorboard", str(tmp_path)]) == 1
    assert "aic: error" in capsys.readouterr().err
