"""Small whole models compiled for cuda, run in the emulator, compared with onnxruntime."""

from __future__ import annotations

import numpy as np

from tests.onnx_util import assert_close, node_model, run_ort
from tests.test_models_interp import cnn, transformer_block

from .conftest import compile_cuda, emulated, needs_nvrtc

pytestmark = needs_nvrtc
F32 = np.float32


def check(model, feeds, folder, name, shapes=None):
    (expected,) = run_ort(model, feeds)[:1]
    module = emulated(compile_cuda(model, folder, name, shapes=shapes))
    actual = module.run(None, feeds)[0]
    assert_close(actual, expected, 1e-4, 1e-5, name)


def test_cnn(tmp_path):
    rng = np.random.default_rng(1)
    check(cnn(rng), {"x": rng.standard_normal((2, 3, 16, 16)).astype(F32)}, tmp_path, "cnn", {"batch": 2})


def test_transformer_block(tmp_path):
    rng = np.random.default_rng(2)
    check(transformer_block(rng), {"x": rng.standard_normal((2, 4, 8)).astype(F32)}, tmp_path, "block", {"batch": 2})


def test_lstm(tmp_path):
    rng = np.random.default_rng(3)
    seq, batch, inp, hidden = 5, 2, 4, 6
    x = rng.standard_normal((seq, batch, inp)).astype(F32)
    w = (rng.standard_normal((1, 4 * hidden, inp)) * 0.4).astype(F32)
    r = (rng.standard_normal((1, 4 * hidden, hidden)) * 0.4).astype(F32)
    b = (rng.standard_normal((1, 8 * hidden)) * 0.1).astype(F32)
    model = node_model("LSTM", {"x": x}, outputs=("y", "y_h"), attrs={"hidden_size": hidden},
                       initializers={"w": w, "r": r, "b": b})  # fmt: skip
    check(model, {"x": x}, tmp_path, "lstm")
