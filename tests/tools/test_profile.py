"""`aic profile`: per-kernel figures and the Chrome trace of the timed runs."""

from __future__ import annotations

import json

import onnx
import pytest

from aic.cli import main
from aic.profile import profile

from .models import mlp


def test_profile_figures_and_trace(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp(), path)
    trace = tmp_path / "trace.json"
    result = profile(path, runs=4, threads=1, trace=str(trace))
    assert [k.group for k in result.kernels] == ["MatMul+Add+Relu", "MatMul+Relu", "MatMul"]
    assert sum(k.share for k in result.kernels) == pytest.approx(1.0)
    assert all(k.seconds > 0 and k.gflops > 0 and k.gbytes > 0 and k.calls_per_run == 1 for k in result.kernels)
    assert result.kernel_seconds <= result.run_seconds
    events = json.loads(trace.read_text())
    assert sum(e["cat"] == "Kernel" for e in events) == 4 * 3
    assert result.top(1)[0].seconds == max(k.seconds for k in result.kernels)


def test_profile_cli(tmp_path, capsys):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp(), path)
    out = tmp_path / "profile.json"
    assert main(["profile", str(path), "--runs", "2", "--top", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "GFLOP/s" in text and text.count("MatMul") == 2  # --top 2
    assert len(json.loads(out.read_text())["kernels"]) == 3


def test_profile_of_a_model_with_a_side_weights_file(tmp_path, monkeypatch):
    import tempfile

    import aic.runtime.package

    monkeypatch.setattr(aic.runtime.package, "EMBED_LIMIT", 0)  # every weight to model.weights, as large models
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp(), path)
    result = profile(path, runs=2, threads=1)
    assert len(result.kernels) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp.onnx"]  # the compiled files are gone
