"""ONNX backend node cases compiled for cuda and run in the emulator, with the suite's tolerances.

By default a fixed sample (every STRIDE-th in-scope case that aic passes on the CPU, and
every If/Loop/Scan case: their steps run on the host side of the plan); set
AIC_CUDA_NODE_SUITE=all to run every in-scope case (slow: minutes per hundred cases).
"""

from __future__ import annotations

import os

import pytest

from tests.conformance.cases import node_cases
from tests.conformance.expected_failures import EXPECTED_FAILURES
from tests.conformance.runner import compare

from .conftest import needs_nvrtc

pytestmark = needs_nvrtc
STRIDE = int(os.environ.get("AIC_CUDA_NODE_STRIDE", "40"))


def _names() -> list[str]:
    names = sorted(n for n, c in node_cases().items() if not c.out_of_scope and n not in EXPECTED_FAILURES)
    if os.environ.get("AIC_CUDA_NODE_SUITE") == "all":
        return names
    control = [n for n in names if node_cases()[n].op_types & {"If", "Loop", "Scan"}]  # host-side plan steps
    return sorted({*names[::STRIDE], *control})


@pytest.mark.parametrize("name", _names())
def test_node_case_emulated(name, monkeypatch):
    from aic.codegen.errors import CodegenError

    import aic

    case = node_cases()[name]
    monkeypatch.setenv("AIC_CUDA_EMULATE", "1")
    try:
        module = aic.compile(case.model, target="cuda -arch=sm_80")  # specialises shapes computed from inputs
    except CodegenError as err:
        if case.op_types & {"If", "Loop", "Scan"} and ("control flow" in str(err) or "scan rows" in str(err)):
            pytest.xfail(f"the cuda target does not run If/Loop/Scan steps yet: {err}")
        raise
    names = [i.name for i in module.inputs]
    for inputs, expected in case.data_sets:
        compare(expected, module.run(None, dict(zip(names, inputs))), case.rtol, case.atol)
