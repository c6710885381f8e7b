"""The official ONNX backend node suite, run compiled through aic's ONNX backend.

Every in-scope case (see `cases.py`) compiles with `aic.compile` and runs
natively; onnx's BackendTest compares outputs with its own tolerances. Known
failures are listed with reasons in `expected_failures.py`.
"""

import onnx.backend.test

from aic.onnx_backend import AicBackend
from tests.conformance.cases import node_cases
from tests.conformance.expected_failures import EXPECTED_FAILURES

backend_test = onnx.backend.test.BackendTest(AicBackend, __name__)
for name, case in node_cases().items():
    if case.out_of_scope:
        backend_test.exclude(f"^{name}_cpu$")
for name in EXPECTED_FAILURES:
    backend_test.xfail(f"^{name}_cpu$")

globals()["OnnxBackendNodeModelTest"] = backend_test.test_cases["OnnxBackendNodeModelTest"]
