"""Fixtures of the cuda target tests: compile for cuda, load in the emulator."""

from __future__ import annotations

import ctypes.util
import os
from pathlib import Path

import pytest
from aic.codegen import cuda_nvrtc

needs_nvrtc = pytest.mark.skipif(not cuda_nvrtc.available(), reason="NVRTC is not installed (pip install 'aic[cuda]')")


def has_gpu() -> bool:
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = ctypes.c_int(0)
    return lib.cuInit(0) == 0 and lib.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0


needs_gpu = pytest.mark.skipif(not has_gpu(), reason="no CUDA GPU and driver (libcuda.so.1) on this machine")


def compile_cuda(model, folder: Path, name: str = "model", target: str = "cuda -arch=sm_80", shapes=None) -> Path:
    from aic.compiler.pipeline import compile_model

    return compile_model(model, target, output=folder / f"{name}.so", shapes=shapes)


def emulated(path: Path):
    import aic

    return aic.load(path, emulate=True)


@pytest.fixture(autouse=True)
def _forward_order(monkeypatch):
    monkeypatch.delenv("AIC_EMU_ORDER", raising=False)
    monkeypatch.delenv("AIC_CUDA_EMULATE", raising=False)
    yield
    os.environ.pop("AIC_EMU_ORDER", None)
