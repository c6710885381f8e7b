"""The cuda target needs no LLVM: a GPU machine without llvmlite compiles, loads and runs (emulated here)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from tests.onnx_util import node_model, run_ort

from .conftest import needs_nvrtc

pytestmark = needs_nvrtc

SCRIPT = """
import sys
sys.modules["llvmlite"] = None  # any import of llvmlite now fails
import numpy as np, aic
from aic.compiler.pipeline import compile_model
path = compile_model(sys.argv[1], target="cuda -arch=sm_80", output=sys.argv[2])
x = np.load(sys.argv[3])
np.save(sys.argv[4], aic.load(path, emulate=True).run(None, {"x": x})[0])
"""


def test_cuda_compile_and_emulated_run_without_llvmlite(tmp_path):
    x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    model = node_model("Softmax", {"x": x}, attrs={"axis": -1})
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    np.save(tmp_path / "x.npy", x)
    args = [str(tmp_path / n) for n in ("m.onnx", "m.so", "x.npy", "y.npy")]
    subprocess.run([sys.executable, "-c", SCRIPT, *args], check=True, capture_output=True, timeout=300)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), run_ort(model, {"x": x})[0], rtol=1e-5, atol=1e-6)
