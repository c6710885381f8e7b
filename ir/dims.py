"""Tensor dimensions: an int, or a named symbol such as ``"batch"``.

Symbolic dims are strings. Products of symbols stay exact in a canonical
monomial form (``"2*batch*seq"``), so reshapes such as ``[b, s, 768] ->
[b*s, 768] -> [b, s, 768]`` keep their symbols. Any other expression (a sum,
an inexact quotient) becomes an opaque symbol written in parentheses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

Dim = int | str


def is_static(dims: Iterable[Dim]) -> bool:
    return all(isinstance(d, int) for d in dims)


def _monomial(d: Dim) -> tuple[int, Counter[str]]:
    if isinstance(d, int):
        return d, Counter()
    coeff, factors = 1, Counter[str]()
    if _has_top_level(d, "+-/"):
        return 1, Counter({f"({d})": 1})
    for part in _split_top(d):
        if part.isdigit():
            coeff *= int(part)
        else:
            factors[part] += 1
    return coeff, factors


def _has_top_level(d: str, chars: str) -> bool:
    depth = 0
    for ch in d:
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and ch in chars:
            return True
    return False


def _split_top(d: str) -> list[str]:
    """Split on '*' outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(d):
        depth += (ch == "(") - (ch == ")")
        if ch == "*" and depth == 0:
            parts.append(d[start:i])
            start = i + 1
    parts.append(d[start:])
    return parts


def _from_monomial(coeff: int, factors: Counter[str]) -> Dim:
    if coeff == 0:
        return 0
    names = sorted(n for n, k in factors.items() for _ in range(k) if k > 0)
    if not names:
        return coeff
    if coeff == 1 and len(names) == 1 and names[0].startswith("("):
        return names[0][1:-1]  # a lone sum: "(b+1)" -> "b+1"
    return "*".join(([str(coeff)] if coeff != 1 else []) + names)


def dim_mul(a: Dim, b: Dim) -> Dim:
    ca, fa = _monomial(a)
    cb, fb = _monomial(b)
    return _from_monomial(ca * cb, fa + fb)


def dim_prod(dims: Iterable[Dim]) -> Dim:
    out: Dim = 1
    for d in dims:
        out = dim_mul(out, d)
    return out


def dim_div(a: Dim, b: Dim) -> Dim | None:
    """Exact quotient a / b, or None when it is not exact."""
    ca, fa = _monomial(a)
    cb, fb = _monomial(b)
    if cb == 0 or ca % cb or any(fa[n] < k for n, k in fb.items()):
        return None
    fa.subtract(fb)
    return _from_monomial(ca // cb, fa)


def _atom(d: Dim) -> str:
    s = str(d)
    return s if s.replace("_", "").isalnum() else f"({s})"


def dim_add(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if a == 0:
        return b
    if b == 0:
        return a
    return f"{_atom(a)}+{_atom(b)}"


def dim_sub(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a - b
    if b == 0:
        return a
    return f"{_atom(a)}-{_atom(b)}"


def dim_str(d: Dim) -> str:
    return str(d)
