"""`aic profile`: per-kernel figures and the Chrome trace of the timed runs."""

from __future__ import annotations

import json

import onnx
import pytest

from aic.cli import main
from aic.profile import profile, summarize

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
    assert 0 < result.kernel_run_seconds <= result.run_seconds
    assert 0 < result.outside_seconds < result.run_seconds  # a run's wall time holds its kernels
    assert result.cpu_wait_seconds is None or result.cpu_wait_seconds >= 0
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


def test_time_outside_the_kernels_is_taken_run_by_run():
    # Two kernels fill each 40 ms run but for 0.1 ms; on a loaded host one or the other is slowed in every run.
    # The per-call medians (10 ms each) sum to half a run: that is no time outside the kernels.
    walls = [0.0201, 0.0401, 0.0401, 0.0401]
    per_call = [{0: [0.01], 1: [0.01]}, {0: [0.03], 1: [0.01]}, {0: [0.01], 1: [0.03]}, {0: [0.02], 1: [0.02]}]
    result = summarize("m", 1, walls, per_call, [], waits=[0, 10**7, 10**7, 10**7])
    assert result.kernel_seconds == pytest.approx(0.03)  # per-call medians: 15 ms each
    assert result.run_seconds == pytest.approx(0.0401)
    assert result.kernel_run_seconds == pytest.approx(0.04)
    assert result.outside_seconds == pytest.approx(0.0001)
    assert result.cpu_wait_seconds == pytest.approx(0.01)
    assert "outside them 100.0 us; waiting for a CPU 10.000 ms" in result.text()
    assert summarize("m", 1, walls, per_call, [], waits=[None] * 4).cpu_wait_seconds is None
