"""Small whole models compiled for cuda, run in the emulator, compared with onnxruntime.

Exact FP32 (`-fp32-exact`) unless a test says TF32: TF32 tensor-core products (the default for
float32 contractions, as onnxruntime's `use_tf32`) are compared with a stated looser tolerance."""

from __future__ import annotations

import numpy as np
import pytest
from aic.compiler.pipeline import lower_model

from tests.onnx_util import assert_close, node_model, run_ort
from tests.passes.test_channels_first import convnext_block
from tests.test_models_interp import cnn, transformer_block

from .conftest import compile_cuda, emulated, needs_nvrtc

pytestmark = needs_nvrtc
F32 = np.float32


def check(model, feeds, folder, name, shapes=None, tf32=False):
    (expected,) = run_ort(model, feeds)[:1]
    target = "cuda -arch=sm_80" if tf32 else "cuda -arch=sm_80 -fp32-exact"
    module = emulated(compile_cuda(model, folder, name, target, shapes=shapes))
    actual = module.run(None, feeds)[0]
    tolerance = (2e-2, 2e-2) if tf32 else (1e-4, 1e-5)  # TF32 keeps 10 mantissa bits of each factor
    assert_close(actual, expected, *tolerance, name)
    return module


@pytest.mark.parametrize("tf32", [False, True], ids=["fp32", "tf32"])
def test_cnn(tmp_path, tf32):
    rng = np.random.default_rng(1)
    module = check(cnn(rng), {"x": rng.standard_normal((2, 3, 16, 16)).astype(F32)}, tmp_path, "cnn", {"batch": 2},
                   tf32)  # fmt: skip
    rules = [k["rule"] for k in module.metadata["cuda"]["kernels"]]
    assert rules.count("implicit-gemm-tf32" if tf32 else "implicit-gemm") == 1  # the 8 -> 16 channel convolution


def test_convnext_block(tmp_path):
    """ChannelLayerNorm (the channels-first pass's) on a scalar target: one reduction over the channels."""
    m, feeds = convnext_block(8, (28, 28), 1)
    check(m, feeds, tmp_path, "convnext")


def test_transformer_block(tmp_path):
    rng = np.random.default_rng(2)
    check(transformer_block(rng), {"x": rng.standard_normal((2, 4, 8)).astype(F32)}, tmp_path, "block", {"batch": 2})


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_lstm(tmp_path, direction):
    """A bidirectional layer is one whole-sequence op on a CPU; for the GPU it is split into one kernel per step."""
    rng = np.random.default_rng(3)
    seq, batch, inp, hidden = 5, 2, 4, 6
    dirs = 2 if direction == "bidirectional" else 1
    x = rng.standard_normal((seq, batch, inp)).astype(F32)
    w = (rng.standard_normal((dirs, 4 * hidden, inp)) * 0.4).astype(F32)
    r = (rng.standard_normal((dirs, 4 * hidden, hidden)) * 0.4).astype(F32)
    b = (rng.standard_normal((dirs, 8 * hidden)) * 0.1).astype(F32)
    model = node_model("LSTM", {"x": x}, outputs=("y", "y_h", "y_c"),
                       attrs={"hidden_size": hidden, "direction": direction},
                       initializers={"w": w, "r": r, "b": b})  # fmt: skip
    if direction == "bidirectional":
        groups = [c.attrs.get("group") for c in lower_model(model, target="cuda").calls]
        assert groups.count("LSTMStep") == seq
    check(model, {"x": x}, tmp_path, f"lstm_{direction}")
