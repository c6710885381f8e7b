"""Symbolic contents of small integer tensors through elementwise ops.

Shape arithmetic (Shape -> Mul -> Concat -> Reshape, Where(Equal(shape, -1), ...))
computes on dims. `contents(fn)` makes an op's propagation apply a scalar function
to the known contents of its inputs: ints, or symbols in `ir.dims` form, which are
sizes and so never negative. A result that cannot be expressed exactly is None.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from ..dims import Dim, dim_add, dim_div, dim_mul, dim_sub
from .registry import InferContext, PropagateFn
from .symbolic import MAX_SYM

ScalarFn = Callable[..., Dim | None]


def contents(fn: ScalarFn) -> PropagateFn:
    """Propagation computing each output element from the inputs' known contents with `fn`
    (ints and symbols in, an int, a symbol or None out). Only small 0-D/1-D integer or bool
    tensors carry contents."""

    def propagate(ctx: InferContext) -> list[tuple[Dim, ...] | None]:
        arrays = []
        for i in range(len(ctx.types)):
            if not ctx.has(i):
                continue
            t, values = ctx.input(i), ctx.values(i)
            if values is None or t.dtype.is_float or t.rank > 1 or len(values) != (t.shape or (1,))[0]:
                return [None]
            array = np.empty(len(values), dtype=object)
            array[:] = values
            arrays.append(array.reshape(t.shape))
        out_shape = np.broadcast_shapes(*(a.shape for a in arrays))
        if int(np.prod(out_shape)) > MAX_SYM:
            return [None]
        columns = [np.broadcast_to(a, out_shape).reshape(-1) for a in arrays]
        out = [fn(*row) for row in zip(*columns)]
        return [None if any(v is None for v in out) else tuple(out)]

    return propagate


def fold(pair: ScalarFn) -> ScalarFn:
    """An n-ary scalar function from a binary one (None absorbs)."""
    return lambda *args: functools.reduce(lambda a, b: None if a is None else pair(a, b), args)


def ints(fn: Callable[..., int]) -> ScalarFn:
    """`fn` on plain ints; unknown when any argument is symbolic."""
    return lambda *args: fn(*args) if all(isinstance(a, int) for a in args) else None


def is_size(v: Dim) -> bool:
    """A symbol naming a size (a product of dims), hence >= 0."""
    return isinstance(v, str) and "+" not in v and "-" not in v


def sym_add(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and not isinstance(b, int):
        a, b = b, a
    return dim_sub(a, -b) if isinstance(b, int) and b < 0 else dim_add(a, b)


def sym_sub(a: Dim, b: Dim) -> Dim:
    return dim_add(a, -b) if isinstance(b, int) and b < 0 and isinstance(a, str) else dim_sub(a, b)


def factor(v: Dim) -> Dim:
    """A sum or difference as one parenthesised factor of a product."""
    if isinstance(v, str):
        depth = 0
        for ch in v:
            depth += (ch == "(") - (ch == ")")
            if depth == 0 and ch in "+-":
                return f"({v})"
    return v


def sym_mul(a: Dim, b: Dim) -> Dim | None:
    if any(isinstance(v, int) and v < 0 for v in (a, b)) and not all(isinstance(v, int) for v in (a, b)):
        return None  # the canonical form has no negative coefficients
    return dim_mul(factor(a), factor(b))


def sym_div(a: Dim, b: Dim) -> Dim | None:
    if isinstance(a, int) and isinstance(b, int):
        if b == 0:
            return None
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    if isinstance(b, int) and b <= 0:
        return None
    return dim_div(factor(a), factor(b))


def sym_max(a: Dim, b: Dim) -> Dim | None:
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    if a == b:
        return a
    size, n = (a, b) if isinstance(b, int) else (b, a)
    return size if isinstance(n, int) and n <= 0 and is_size(size) else None


def sym_min(a: Dim, b: Dim) -> Dim | None:
    if isinstance(a, int) and isinstance(b, int):
        return min(a, b)
    if a == b:
        return a
    size, n = (a, b) if isinstance(b, int) else (b, a)
    return n if isinstance(n, int) and n <= 0 and is_size(size) else None


def sym_equal(a: Dim, b: Dim) -> Dim | None:
    if a == b:
        return 1
    if isinstance(a, int) and isinstance(b, int):
        return 0
    size, n = (a, b) if isinstance(b, int) else (b, a)
    return 0 if isinstance(n, int) and n < 0 and is_size(size) else None


def sym_compare(op: Callable[[int, int], bool]) -> ScalarFn:
    """A comparison of known ints, or of a symbol with itself."""

    def fn(a: Dim, b: Dim) -> Dim | None:
        if isinstance(a, int) and isinstance(b, int):
            return int(op(a, b))
        return int(op(0, 0)) if a == b else None

    return fn


def sym_abs(v: Dim) -> Dim | None:
    return abs(v) if isinstance(v, int) else (v if is_size(v) else None)
