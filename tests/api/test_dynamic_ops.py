"""Every op class of the compiled-op suite with a run-time leading dim, and with a run-time last
dim (the innermost, vectorised one): one artifact per case, compiled for a range, run at two sizes
(the case's own and a larger one) against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import aic
from tests.lower.test_compiled_ops import CASES
from tests.onnx_util import assert_close, node_model, run_ort

SKIP = {
    "Expand": "its output's leading dim is a constant shape broadcast against the input's",
    "Slice": "its output size min(n, 5) - 1 is not an expression of the symbol (dims are sums and products)",
}


LAST_SKIP = {  # why a case cannot take a run-time last dim
    "MatMul": "the constant right-hand side fixes K", "Gemm": "the constant weight fixes K",
    "Conv": "the weights fix the kernel window", "Expand": "the constant target shape fixes it",
    "Slice": "min(n, 19) - 2 is not an expression of the symbol", "Resize": "the scales resize it",
    "Gather": "the indices select rows, the last dim is data", "Trilu": "the diagonal of a square needs both dims",
    "TopK": "k selects along it", "Split": "the split sizes fix it", "Concat": "concatenated along axis 1 only",
    "MaxPool": "sliding windows split their spatial dims at compile time (interior and borders)",
    "AveragePool": "sliding windows split their spatial dims at compile time (interior and borders)",
}  # fmt: skip


def _symbolic(model: onnx.ModelProto, names: set[str], axis: int = 0) -> onnx.ModelProto:
    """The model with dim `axis` of the inputs in `names` (and of every output) made the symbol 'n'."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for v in [*model.graph.input, *model.graph.output]:
        if v.name in names or v in model.graph.output:
            dims = v.type.tensor_type.shape.dim
            if dims:
                dims[axis].Clear()
                dims[axis].dim_param = "n"
    return model


def _resized(array: np.ndarray, n: int, rng: np.random.Generator, axis: int = 0) -> np.ndarray:
    shape = tuple(n if d == axis % array.ndim else s for d, s in enumerate(array.shape))
    if array.dtype == np.bool_:
        return rng.random(shape) > 0.5
    return (rng.standard_normal(shape) * np.std(array) + np.mean(array)).astype(array.dtype)


@pytest.mark.parametrize(("op", "inputs", "attrs", "consts", "names", "outputs"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])  # fmt: skip
def test_op_with_a_run_time_leading_dim(op, inputs, attrs, consts, names, outputs, tmp_path):
    if op in SKIP:
        pytest.skip(SKIP[op])
    outs = ("y",) if outputs == 1 else tuple(f"y{i}" for i in range(outputs))
    lead = next(iter(inputs.values())).shape[0]
    batched = {k for k, a in inputs.items() if a.ndim > 1 and a.shape[0] == lead}
    model = _symbolic(node_model(op, inputs, outs, attrs, 19 if op == "Resize" else 21, consts, names), batched)
    module = aic.compile(model, shapes={"n": (1, lead + 3, lead)}, output=tmp_path / "m.so", num_threads=1)
    rng = np.random.default_rng(3)
    for n in (lead, lead + 2):
        feeds = {k: _resized(a, n, rng) if k in batched else a for k, a in inputs.items()}
        for got, want in zip(module.run(None, feeds), run_ort(model, feeds)):
            assert_close(got, want, 1e-4, 1e-5)


@pytest.mark.parametrize(("op", "inputs", "attrs", "consts", "names", "outputs"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])  # fmt: skip
def test_op_with_a_run_time_last_dim(op, inputs, attrs, consts, names, outputs, tmp_path):
    if op in LAST_SKIP or op in SKIP:
        pytest.skip(LAST_SKIP.get(op) or SKIP[op])
    outs = ("y",) if outputs == 1 else tuple(f"y{i}" for i in range(outputs))
    last = next(iter(inputs.values())).shape[-1]
    varied = {k for k, a in inputs.items() if a.shape[-1] == last}
    model = _symbolic(node_model(op, inputs, outs, attrs, 19 if op == "Resize" else 21, consts, names), varied, -1)
    module = aic.compile(model, shapes={"n": (1, last + 40, last)}, output=tmp_path / "m.so", num_threads=1)
    rng = np.random.default_rng(4)
    for n in (last, last + 37):
        feeds = {k: _resized(a, n, rng, -1) if k in varied else a for k, a in inputs.items()}
        for got, want in zip(module.run(None, feeds), run_ort(model, feeds)):
            assert_close(got, want, 1e-4, 1e-5)
