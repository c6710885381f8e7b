"""Unary elementwise ops: arithmetic, rounding, transcendental functions, tests
for special values, logical/bitwise not, Identity. Float semantics as in
`elementwise`: transcendental functions are computed in float64 and rounded once.
"""

from __future__ import annotations

import math

import numpy as np

from ..dtypes import ALL_TYPES, FLOAT_TYPES, INT_TYPES, DType
from .contents import sym_abs
from .elementwise import BOOL, SIGNED_TYPES, unary
from .registry import Attr

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function of a float64 array (numpy has none)."""
    return np.asarray(_erf(x), dtype=np.float64)


unary("Abs", np.abs, sym=sym_abs, doc="Integer minimum values wrap (abs(-128) = -128 in int8).")
unary("Neg", np.negative, SIGNED_TYPES, sym=lambda v: -v if isinstance(v, int) else None)
unary("Sign", np.sign, doc="-1, 0 or 1; NaN stays NaN.")
unary("Floor", np.floor, FLOAT_TYPES)
unary("Ceil", np.ceil, FLOAT_TYPES)
unary("Round", np.round, FLOAT_TYPES, doc="Halves round to even.")
unary("Reciprocal", lambda x: 1 / x, FLOAT_TYPES)
unary("Sqrt", np.sqrt, FLOAT_TYPES)

for _name, _fn in {
    "Exp": np.exp,
    "Log": np.log,
    "Sin": np.sin,
    "Cos": np.cos,
    "Tan": np.tan,
    "Asin": np.arcsin,
    "Acos": np.arccos,
    "Atan": np.arctan,
    "Sinh": np.sinh,
    "Cosh": np.cosh,
    "Asinh": np.arcsinh,
    "Acosh": np.arccosh,
    "Atanh": np.arctanh,
    "Tanh": np.tanh,
    "Erf": erf,
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
}.items():
    unary(_name, _fn, FLOAT_TYPES, precise=True)

unary("IsNaN", np.isnan, FLOAT_TYPES, out=DType.bool, cost=0)
unary(
    "IsInf",
    lambda x, detect_negative, detect_positive: (
        (np.isposinf(x) & bool(detect_positive)) | (np.isneginf(x) & bool(detect_negative))
    ),
    FLOAT_TYPES,
    out=DType.bool,
    attrs={"detect_negative": Attr("int", 1, (0, 1)), "detect_positive": Attr("int", 1, (0, 1))},
    cost=0,
)
unary("Not", np.logical_not, BOOL, sym=lambda v: int(not v) if isinstance(v, int) else None)
unary("BitwiseNot", np.invert, INT_TYPES)
unary("Identity", lambda x: x, ALL_TYPES, sym=lambda v: v, cost=0)
