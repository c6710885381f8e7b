"""Run one ONNX node case through an engine and compare with its expected outputs
by onnx's own BackendTest assertion (shape, dtype, assert_allclose with the case's
rtol/atol, bfloat16 at two ULPs; sequences element by element, strings exactly)."""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np
from onnx.backend.test.runner import Runner

from .cases import NodeCase


def compare(expected: list, actual: list, rtol: float, atol: float) -> None:
    Runner.assert_similar_outputs(expected, actual, rtol, atol)


def run_interpreted(case: NodeCase, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from aic.frontend.onnx import load_model
    from aic.ir import run_graph

    graph = load_model(case.model)
    return run_graph(graph, {v.name: x for v, x in zip(graph.inputs, inputs)})


def run_compiled(case: NodeCase, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import aic

    module = aic.compile(case.model)
    names = [i.name for i in module.inputs]
    return module.run(None, dict(zip(names, inputs)))


def run_onnxruntime(case: NodeCase, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The same case through onnxruntime, for comparing pass rates on the same machine."""
    import onnxruntime as ort

    session = ort.InferenceSession(case.model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


ENGINES = {"interp": run_interpreted, "aic": run_compiled, "ort": run_onnxruntime}


def run_case(case: NodeCase, engine: str = "aic") -> tuple[bool, str]:
    """(passed, one-line reason when not)."""
    try:
        for inputs, expected in case.data_sets:
            compare(expected, ENGINES[engine](case, inputs), case.rtol, case.atol)
    except Exception as err:
        last = traceback.extract_tb(err.__traceback__)[-1]
        first_line = (str(err).strip().splitlines() or [""])[0][:300]
        return False, f"{type(err).__name__}: {first_line} [{Path(last.filename).name}:{last.lineno}]"
    return True, ""
