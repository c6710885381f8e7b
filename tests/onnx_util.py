"""Single-node and small ONNX models, run by onnxruntime and by aic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from aic.frontend.onnx import load_model
from aic.ir import DType, run_graph, verify
from onnx import helper


def graph_model(
    nodes: list[onnx.NodeProto], inputs: dict[str, np.ndarray], outputs: Sequence[str],
    weights: dict[str, np.ndarray], opset: int = 21,
) -> onnx.ModelProto:
    """A float32 graph of `nodes` reading `inputs` (graph inputs) and `weights` (initializers)."""
    infos = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, a.shape) for n, a in inputs.items()]
    consts = [onnx.numpy_helper.from_array(a, n) for n, a in weights.items()]
    graph = helper.make_graph(nodes, "g", infos, [onnx.ValueInfoProto(name=o) for o in outputs], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset < 21 else 10
    return model


def node_model(
    op_type: str,
    inputs: dict[str, np.ndarray],
    outputs: Sequence[str] = ("y",),
    attrs: dict[str, Any] | None = None,
    opset: int = 20,
    initializers: dict[str, np.ndarray] | None = None,
    input_names: Sequence[str] | None = None,
) -> onnx.ModelProto:
    """One node reading `inputs` (graph inputs, in order) and `initializers`.
    `input_names` orders the node's inputs ('' for an omitted optional input)."""
    initializers = initializers or {}
    names = list(input_names) if input_names is not None else [*inputs, *initializers]
    node = helper.make_node(op_type, names, list(outputs), **(attrs or {}))
    graph = helper.make_graph(
        [node],
        op_type.lower(),
        [helper.make_tensor_value_info(n, DType.from_numpy(a.dtype).onnx, a.shape) for n, a in inputs.items()],
        [onnx.ValueInfoProto(name=o) for o in outputs],
        [onnx.numpy_helper.from_array(a, n) for n, a in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset < 21 else 10
    return model


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def run_interpreter(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    graph = load_model(model)
    verify(graph)
    return run_graph(graph, feeds)


def assert_close(
    actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-5, atol: float = 1e-6, what: str = ""
) -> None:
    """Same dtype and shape, values within tolerance (exact for ints and bools, NaNs equal)."""
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        np.testing.assert_allclose(
            actual.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True, err_msg=what
        )


def check_node(
    op_type: str,
    inputs: dict[str, np.ndarray],
    attrs: dict[str, Any] | None = None,
    outputs: Sequence[str] = ("y",),
    opset: int = 20,
    initializers: dict[str, np.ndarray] | None = None,
    input_names: Sequence[str] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> list[np.ndarray]:
    """Interpret a single-node model and compare every output with onnxruntime."""
    model = node_model(op_type, inputs, outputs, attrs, opset, initializers, input_names)
    expected = run_ort(model, inputs)
    actual = run_interpreter(model, inputs)
    for name, a, e in zip(outputs, actual, expected):
        assert_close(a, e, rtol, atol, f"{op_type} output {name}")
    return actual
