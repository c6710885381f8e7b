"""The kernels' error channel: run-time indices out of range fail the run with a RunError that
names the node, op, valid range, value and position; in-range runs match onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

import aic
from tests.onnx_util import node_model, run_ort

X = np.arange(30, dtype=np.float32).reshape(5, 6)


def compiled(op, inputs, attrs=None, opset=18, **kw):
    model = node_model(op, inputs, attrs=attrs, opset=opset, **kw)
    return model, aic.compile(model)


def check(op, inputs, bad, message, attrs=None, opset=18):
    """`inputs` runs like onnxruntime; `inputs` updated with `bad` raises RunError matching `message`."""
    model, module = compiled(op, inputs, attrs, opset)
    with module:
        for got, want in zip(module.run(None, inputs), run_ort(model, inputs)):
            np.testing.assert_allclose(got, want, rtol=1e-6)
        with pytest.raises(aic.RunError, match=message):
            module.run(None, {**inputs, **bad})
        for got, want in zip(module.run(None, inputs), run_ort(model, inputs)):  # the next run is clean
            np.testing.assert_allclose(got, want, rtol=1e-6)


def test_gather_index_out_of_range():
    ok = {"x": X, "i": np.array([[0, -1], [4, -5]], dtype=np.int64)}
    check("Gather", ok, {"i": np.array([[0, 1], [5, 2]], dtype=np.int64)},
          r"\(Gather\): indices 'i' \(axis 0 of size 5\) must be in \[-5, 4\]; got 5 at flat position 2",
          {"axis": 0})  # fmt: skip
    check("Gather", {"x": X, "i": np.array([5, -6], dtype=np.int32)}, {"i": np.array([-7, 0], dtype=np.int32)},
          r"must be in \[-6, 5\]; got -7 at flat position 0", {"axis": 1})  # fmt: skip


def test_gather_elements_and_nd():
    ok = {"x": X, "i": np.array([[0, 4, -5, 1, 2, 3]], dtype=np.int64)}
    check("GatherElements", ok, {"i": np.array([[0, 4, 1, 9, 2, 3]], dtype=np.int64)},
          r"GatherElements\): .* must be in \[-5, 4\]; got 9 at flat position 3", {"axis": 0})  # fmt: skip
    ok = {"x": X, "i": np.array([[4, 5], [-1, -6]], dtype=np.int64)}
    check("GatherND", ok, {"i": np.array([[4, 5], [1, 6]], dtype=np.int64)},
          r"GatherND\): indices 'i' .*\[\.\.\., 1\] must be in \[-6, 5\]; got 6 at flat position 3")  # fmt: skip


def test_scatters():
    updates = np.ones((2, 6), dtype=np.float32)
    ok = {"x": X, "i": np.array([[1], [-1]], dtype=np.int64), "u": updates}
    check("ScatterND", ok, {"i": np.array([[1], [-7]], dtype=np.int64)},
          r"ScatterND\): .* must be in \[-5, 4\]; got -7 at flat position 1")  # fmt: skip
    ok = {"x": X, "i": np.array([[0, 1, 2, 3, 4, -1]], dtype=np.int64), "u": updates[:1]}
    check("ScatterElements", ok, {"i": np.array([[0, 1, 2, 3, 400, 0]], dtype=np.int64)},
          r"ScatterElements\): .* must be in \[-5, 4\]; got 400 at flat position 4", {"axis": 0})  # fmt: skip


def test_roi_align_batch_indices():
    x = np.random.default_rng(0).random((1, 2, 6, 6), dtype=np.float32)
    rois = np.array([[0, 0, 3, 3], [1, 1, 4, 5]], dtype=np.float32)
    ok = {"x": x, "rois": rois, "b": np.array([0, 0], dtype=np.int64)}
    attrs = {"output_height": 2, "output_width": 2, "sampling_ratio": 2}
    for bad in (1, 10**9, -1):
        check("RoiAlign", ok, {"b": np.array([0, bad], dtype=np.int64)},
              rf"RoiAlign\): batch_indices 'b' \(a batch of 1\) must be in \[0, 0\]; got {bad} at flat position 1",
              attrs, opset=16)  # fmt: skip


def test_max_roi_pool_batch_column():
    x = np.random.default_rng(0).random((2, 1, 6, 6), dtype=np.float32)
    ok = {"x": x, "rois": np.array([[0, 0, 0, 3, 3], [1.5, 1, 1, 4, 5], [-0.5, 0, 0, 5, 5]], dtype=np.float32)}
    attrs = {"pooled_shape": [2, 2]}
    for bad, shown in ((2, "2"), (1e9, "1000000000"), (-1, "-1"), (np.nan, "-4611686018427387904")):
        rois = ok["rois"].copy()
        rois[1, 0] = bad
        check("MaxRoiPool", ok, {"rois": rois},
              rf"MaxRoiPool\): the batch index rois 'rois'\[:, 0\] must be in \[0, 1\] .*; got {shown} at flat "
              "position 5", attrs, opset=16)  # fmt: skip


def test_cumsum_axis_given_at_run_time():
    ok = {"x": X, "axis": np.array(-1, dtype=np.int64)}
    check("CumSum", ok, {"axis": np.array(2, dtype=np.int64)},
          r"CumSum\): axis 'axis' must be in \[-2, 1\]; got 2$")  # fmt: skip


def test_constant_indices_in_range_need_no_check():
    model = node_model("Gather", {"x": X}, initializers={"i": np.array([4, -5], dtype=np.int64)})
    from aic.compiler.pipeline import compile_model
    from aic.runtime.module import load_scratch

    path = compile_model(aic.frontend.onnx.load_model(model), "llvm", 2)
    with load_scratch(path) as module:
        assert module.metadata["error_slot"] == -1 and module.metadata["error_sites"] == []
        np.testing.assert_array_equal(module.run(None, {"x": X})[0], X[[4, -5]])
