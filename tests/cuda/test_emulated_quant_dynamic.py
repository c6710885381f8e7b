"""DynamicQuantizeLinear on the cuda target: written as primitives (`split-dynamic-quantize`), so the range is
two block reductions, and bit for bit onnxruntime's result in the emulator."""

from __future__ import annotations

import numpy as np

from tests.onnx_util import node_model, run_ort

from .conftest import compile_cuda, emulated, needs_nvrtc

pytestmark = needs_nvrtc


def test_block_reductions_and_exact(tmp_path):
    x = (np.random.default_rng(3).standard_normal((6, 300)) * 2).astype(np.float32)
    model = node_model("DynamicQuantizeLinear", {"x": x}, outputs=("y", "scale", "zp"), opset=11)
    module = emulated(compile_cuda(model, tmp_path))
    assert [k["rule"] for k in module.metadata["cuda"]["kernels"]].count("row-reduction") == 2
    for name, a, e in zip(("y", "scale", "zp"), module.run(None, {"x": x}), run_ort(model, {"x": x})):
        np.testing.assert_array_equal(a, e, err_msg=name)
