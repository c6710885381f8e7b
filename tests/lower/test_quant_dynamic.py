"""DynamicQuantizeLinear compiled as one kernel (the range, then the quantizer) against onnxruntime, bit for
bit: vector-length rows with remainders, a dynamic batch, one element, all-zero and one-signed inputs, ties."""

from __future__ import annotations

import numpy as np
import pytest
from aic.frontend.onnx import load_model

import aic
from tests.onnx_util import node_model, run_ort

F32 = np.float32
rng = np.random.default_rng(11)
CASES = {
    "rows": rng.standard_normal((32, 1024)).astype(F32) * 3,
    "remainder": rng.standard_normal((5, 37)).astype(F32),
    "short": rng.standard_normal(3).astype(F32),
    "scalar": np.array(-2.5, F32),
    "zeros": np.zeros((4, 20), F32),
    "positive": rng.uniform(0.5, 4, (2, 3, 19)).astype(F32),
    "negative": -rng.uniform(0.5, 4, (7, 16)).astype(F32),
    "ties": np.array([[-1.0, 0.0, 254.0, 127.5, 0.5, 1.5] * 3], F32),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_onnxruntime(case):
    x = CASES[case]
    model = node_model("DynamicQuantizeLinear", {"x": x}, outputs=("y", "scale", "zp"), opset=11)
    got = aic.compile(model).run(None, {"x": x})
    for name, a, e in zip(("y", "scale", "zp"), got, run_ort(model, {"x": x})):
        assert a.dtype == e.dtype and a.shape == e.shape, name
        np.testing.assert_array_equal(a, e, err_msg=name)


def test_one_kernel_and_dynamic_batch():
    x = CASES["rows"]
    model = node_model("DynamicQuantizeLinear", {"x": x}, outputs=("y", "scale", "zp"), opset=11)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "n"
    graph = load_model(model)
    assert [n.op for n in graph.nodes] == ["DynamicQuantizeLinear"]
    module = aic.compile(model)
    for rows in (1, 9):
        feed = {"x": x[:rows] * (rows + 1)}
        for a, e in zip(module.run(None, feed), run_ort(model, feed)):
            np.testing.assert_array_equal(a, e)
