"""-mcpu / -mattr: unknown names are refused with an `aic: error` line (never an LLVM
abort), and a CPU named alone records its features, so a model built for a CPU this
machine is not refuses to load instead of dying on an illegal instruction."""

from __future__ import annotations

import subprocess
import sys

import onnx
import pytest
from aic.codegen.target import Target, host_features, host_triple

from .test_cache import mlp


def aic_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aic.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("llvm -mcpu=pentium-ultra", "-mcpu=pentium-ultra is not a CPU LLVM knows"),
        ("llvm -mattr=avx2", "each feature needs a + or - sign"),  # LLVM itself aborts on this
        ("llvm -mattr=+avx2,+warpdrive", "+warpdrive is not a feature LLVM knows"),
    ],
)
def test_bad_cpu_or_features_are_an_aic_error(tmp_path, target, message):
    onnx.save(mlp(), tmp_path / "m.onnx")
    proc = aic_cli("compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.so"), "--target", target, "-q")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("aic: error: ") and message in proc.stderr
    assert "LLVM ERROR" not in proc.stderr and "not a recognized" not in proc.stderr


def test_a_named_cpu_records_its_features():
    if not host_triple().startswith("x86_64"):
        pytest.skip("the CPU names below are x86's")
    sapphire = Target.parse("llvm -mcpu=sapphirerapids")
    assert {"+avx512f", "+avx512bf16", "+avx512fp16", "+avx2", "+fma"} <= set(sapphire.features)
    assert sapphire.vector_bits == 512
    znver4 = set(Target.parse("llvm -mcpu=znver4").features)
    assert {"+avx512f", "+avx512bf16", "+avx512vnni"} <= znver4 and "+avx512fp16" not in znver4
    haswell = Target.parse("llvm -mcpu=haswell -mattr=-fma")
    assert "+avx2" in haswell.features and "-fma" in haswell.features and "+fma" not in haswell.features


def test_a_model_for_a_richer_cpu_is_refused_at_load(tmp_path):
    if not host_triple().startswith("x86_64"):
        pytest.skip("the CPU names below are x86's")
    missing = sorted({"+avx512fp16", "+avx512bf16", "+avx512f"} - set(host_features()))
    if not missing:
        pytest.skip("this CPU has every feature of sapphirerapids the check reads")
    onnx.save(mlp(), tmp_path / "m.onnx")
    so = tmp_path / "m.so"
    proc = aic_cli("compile", str(tmp_path / "m.onnx"), "-o", str(so), "--target", "llvm -mcpu=sapphirerapids", "-q")
    assert proc.returncode == 0, proc.stderr
    load = "import aic, sys\ntry:\n    aic.load(sys.argv[1])\nexcept aic.ModelLoadError as e:\n    print(e)"
    proc = subprocess.run([sys.executable, "-c", load, str(so)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr  # not killed by SIGILL
    assert "compiled for CPU 'sapphirerapids' with feature +" in proc.stdout and "which this CPU lacks" in proc.stdout
