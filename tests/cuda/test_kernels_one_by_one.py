"""Every generated kernel of small models launched alone and compared with the loop IR it was
scheduled from (tests/cuda/kernel_check.py): in the emulator everywhere, on a GPU through
cupy.RawModule where one is present. A model compiled for ranges of sizes runs each launch at random
sizes in range, its grid computed from them."""

from __future__ import annotations

import numpy as np
import pytest

from tests.onnx_util import node_model
from tests.test_models_interp import cnn

from .conftest import has_gpu, needs_nvrtc
from .kernel_check import check_kernel, emulator_launcher, gpu_launcher, kernel_checks
from .test_emulated_dynamic import BLOCK_RANGES, transformer_block

pytestmark = needs_nvrtc
rng = np.random.default_rng(11)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


MODELS = {
    "conv_3x3": lambda: node_model(
        "Conv", {"x": f32(1, 5, 6, 7)}, attrs={"pads": [1, 1, 1, 1]}, initializers={"w": f32(20, 5, 3, 3), "b": f32(20)}
    ),
    "matmul": lambda: node_model("MatMul", {"a": f32(2, 20, 17)}, initializers={"w": f32(17, 24)}),
    "gemm_f16": lambda: node_model(  # on tensor cores (m16n8k16) even in exact-FP32 mode
        "Gemm",
        {"a": f32(40, 30).astype(np.float16)},
        attrs={"transB": 1},
        initializers={"w": f32(72, 30).astype(np.float16), "c": f32(72).astype(np.float16)},
    ),
    "gemm_splitk": lambda: node_model(  # few output tiles, K = 640: partial tiles per K slice, then their sum
        "Gemm", {"a": f32(20, 640)}, attrs={"transB": 1}, initializers={"w": f32(24, 640), "c": f32(24)}
    ),
    "softmax": lambda: node_model("Softmax", {"x": f32(3, 64)}, attrs={"axis": -1}),
    "add_vec4": lambda: node_model("Add", {"a": f32(3, 8), "b": f32(8)}),
    "cnn": lambda: cnn(np.random.default_rng(1)),
    "block_ranged": lambda: transformer_block(np.random.default_rng(2)),  # run-time batch and sequence
}
SHAPES = {"cnn": {"batch": 1}, "block_ranged": BLOCK_RANGES}
ROUNDS = {"block_ranged": 3}  # each launch at this many random sizes in range
RTOL = {"gemm_f16": 2e-3}  # float16 outputs: a GPU's mma sums in its own order, an ulp apart


def _checks(name: str):
    source, checks = kernel_checks(MODELS[name](), SHAPES.get(name))
    assert checks
    return source, checks


@pytest.mark.parametrize("name", sorted(MODELS))
def test_kernels_one_by_one_emulated(name):
    source, checks = _checks(name)
    launch = emulator_launcher(source)
    for check in checks:
        for seed in range(ROUNDS.get(name, 1)):
            check_kernel(check, launch, np.random.default_rng(seed), RTOL.get(name, 1e-4))


@pytest.mark.skipif(not has_gpu(), reason="no CUDA GPU and driver (libcuda.so.1) on this machine")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_kernels_one_by_one_on_gpu(name):
    pytest.importorskip("cupy", reason="cupy is not installed")
    source, checks = _checks(name)
    launch = gpu_launcher(source)
    for check in checks:
        for seed in range(ROUNDS.get(name, 1)):
            check_kernel(check, launch, np.random.default_rng(seed), RTOL.get(name, 1e-4))
