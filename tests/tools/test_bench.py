"""`aic bench`: latency percentiles, peers side by side, artifacts."""

from __future__ import annotations

import json

import onnx
import pytest

import aic
from aic.bench import bench
from aic.cli import main

from .models import mlp


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp(), path)
    return path


def test_bench_with_onnxruntime(model_path):
    result = bench(model_path, threads=1, compare=["ort"], duration=0.2)
    assert [e.engine for e in result.engines] == ["aic", "ort"]
    for e in result.engines:
        assert e.runs >= 10
        assert 0 < e.min_ms <= e.median_ms <= e.p90_ms <= e.p99_ms
        assert e.throughput > 0 and e.gflops is not None and 0 < e.peak_share < 1
    assert result.engines[0].vs_aic == 1.0
    assert result.engines[1].vs_aic == pytest.approx(result.engines[1].median_ms / result.engines[0].median_ms)
    assert result.flops >= 2 * 4 * 32 * (32 + 32 + 8)  # the three products
    assert result.compile_seconds > 0 and result.weights_bytes >= 4 * (32 * 32 * 2 + 32 * 8 + 32)  # packed: padded


def test_bench_artifact_and_cli_json(model_path, tmp_path, capsys):
    so = tmp_path / "mlp.so"
    aic.compile(model_path, output=so).close()
    report = tmp_path / "bench.json"
    assert main(["bench", str(so), "--duration", "0.1", "--threads", "1", "-q", "--json", str(report)]) == 0
    assert "median" in capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["engines"][0]["engine"] == "aic" and data["compile_seconds"] is None
    assert main(["bench", str(so), "--compare", "ort", "-q"]) == 1  # peers need the ONNX file
    assert "peers need the ONNX model" in capsys.readouterr().err


def test_unknown_peer(model_path):
    with pytest.raises(ValueError, match="unknown peer"):
        bench(model_path, compare=["tensorrt"], duration=0.1)
