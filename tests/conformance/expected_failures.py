"""The ONNX node cases aic does not pass, each with its reason.

A case listed here that starts passing fails the suite (an unexpected success),
so this list stays exact. Out-of-scope cases are excluded by category in
`cases.py` (`scope_exclusion`) and not run.
"""

EXPECTED_FAILURES: dict[str, str] = {}
