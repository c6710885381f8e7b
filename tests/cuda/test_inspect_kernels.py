"""`aic inspect --kernels` for the cuda target: each CUDA kernel's rule, launch shape, shared memory
and ptxas's registers / spills / stack per architecture, from a .so and from a model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from aic.cli import main
from tests.onnx_util import node_model

from .conftest import compile_cuda, needs_nvrtc

pytestmark = needs_nvrtc


def _matmul_model():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 48)).astype(np.float32), rng.standard_normal((48, 40)).astype(np.float32)
    return node_model("MatMul", {"a": a, "b": b})


def test_kernels_of_a_cuda_artifact(tmp_path, capsys):
    path = compile_cuda(_matmul_model(), tmp_path, "mm", "cuda")
    assert main(["inspect", str(path), "--kernels"]) == 0
    out = capsys.readouterr().out
    assert "1 kernel calls\n#0 k0_matmul: MatMul  (0.246 MFLOP" in out  # 2 * 64 * 48 * 40
    header = next(line for line in out.splitlines() if line.startswith("kernel "))
    assert "sm_80 regs/spill/stack" in header and "sm_90 regs/spill/stack" in header
    row = next(line for line in out.splitlines() if line.startswith("k0_matmul "))
    rule, grid, block, smem, sm80, sm90 = row.split()[1:]
    assert rule.startswith("tiled-matmul") and grid == "1x1x1" and block.endswith("x1x1") and int(smem) > 0
    for figures in (sm80, sm90):
        registers, spills, stack = (int(v) for v in figures.split("/"))
        assert 0 < registers <= 255 and spills == 0 and stack >= 0
    assert out.rstrip().endswith("1 kernels; no spills")


def test_kernels_of_a_model_for_cuda(tmp_path, capsys):
    model = tmp_path / "mm.onnx"
    model.write_bytes(_matmul_model().SerializeToString())
    assert main(["inspect", str(model), "--kernels", "--target", "cuda", "--json"]) == 0
    (kernel,) = json.loads(capsys.readouterr().out)["kernels"]["cuda_kernels"]
    assert kernel["name"] == "k0_matmul" and kernel["rule"].startswith("tiled-matmul")
    assert set(kernel["ptxas"]) == {"sm_80", "sm_90"} and kernel["ptxas"]["sm_90"]["registers"] > 0


def test_run_time_grids_of_a_ranged_artifact(tmp_path, capsys):
    asset = Path(__file__).parents[1] / "assets" / "gpt2_tiny_dyn.onnx"
    path = compile_cuda(asset, tmp_path, "gpt2", "cuda", shapes={"batch": (1, 3), "seq": (1, 96, 32)})
    assert main(["inspect", str(path), "--kernels"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("k") and "/" in line]
    assert any(r[2].startswith("?") for r in rows)  # run-time grids
    assert any(r[0].endswith("output_dims") and r[2] == "1x1x1" for r in rows)
    assert "grid ?: computed from the run's sizes" in out
