"""Sizes known only at run time: the symbolic dims of a model compiled for a range of shapes.

A model compiled with ranges (``{"batch": (1, 64), "seq": (1, 512, 128)}``) keeps those
symbols in its graph. Lowering sees each symbolic dim as a `Sym`: the loop-IR expression
that computes it inside a kernel (of one `Var` per symbol, bound at the kernel's top from
the model's int64 "dims" slot) and the interval of its values. Lowering code does its
arithmetic on sizes as before (`Sym` supports + - * // % with ints and other `Sym`s), so
strides, loop extents and tails become expressions of the symbols. A decision that needs a
size's value at compile time (a comparison, `int()`, `range()`) raises `SymbolicSizeError`,
which the caller reports naming the node: such an op does not take run-time sizes yet.
Buffers are sized for the largest value (`bound`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import reduce
from typing import Any

from aic.ir.dims import Dim
from aic.ir.dtypes import DType
from aic.ir.loop import INDEX, Cast, Const, Expr, Var
from aic.ir.loop_printer import expr_text
from aic.ir.loop_tools import binop
from aic.ir.types import TensorType
from aic.runtime.dim_expr import DimError, eval_dim


class SymbolicSizeError(ValueError):
    """A compile-time decision was asked of a size known only at run time."""


@dataclass(frozen=True)
class SymbolRange:
    """The sizes a symbolic dim may take at run time, and the one the schedule is chosen for."""

    name: str
    lo: int
    hi: int
    opt: int

    def __post_init__(self) -> None:
        if not 0 <= self.lo <= self.opt <= self.hi:
            raise ValueError(f"dim '{self.name}': need 0 <= min <= opt <= max, got {self.lo}..{self.hi}:{self.opt}")



class Sym:
    """A size computed at run time: `expr` (loop IR of the symbol variables) in `lo..hi`."""

    __slots__ = ("_key", "expr", "hi", "lo")

    def __init__(self, expr: Expr, lo: int, hi: int) -> None:
        self.expr, self.lo, self.hi = expr, lo, hi
        self._key = expr_text(expr)

    # -- arithmetic, with the interval of the result
    def _op(self, op: str, other: Size, reverse: bool = False) -> Size:
        if not isinstance(other, (int, Sym)) or isinstance(other, bool):
            return NotImplemented
        a, b = (other, self) if reverse else (self, other)
        if op == "sub" and a == b:
            return 0
        lo_a, hi_a = bounds(a)
        lo_b, hi_b = bounds(b)
        if op == "add":
            lo, hi = lo_a + lo_b, hi_a + hi_b
        elif op == "sub":
            lo, hi = lo_a - hi_b, hi_a - lo_b
        elif op == "mul":
            products = (lo_a * lo_b, lo_a * hi_b, hi_a * lo_b, hi_a * hi_b)
            lo, hi = min(products), max(products)
        elif op == "div":
            if isinstance(b, Sym) or b <= 0:
                raise SymbolicSizeError(f"dividing by the run-time size {describe(b)}")
            lo, hi = lo_a // b, hi_a // b
        else:  # mod
            if isinstance(b, Sym) or b <= 0:
                raise SymbolicSizeError(f"the remainder by the run-time size {describe(b)}")
            lo, hi = 0, min(hi_a, b - 1)
        expr = binop(op, as_expr(a), as_expr(b))
        return lo if lo == hi else Sym(expr, lo, hi)

    def __add__(self, o: Size) -> Size:
        return self._op("add", o)

    def __radd__(self, o: Size) -> Size:
        return self._op("add", o, True)

    def __sub__(self, o: Size) -> Size:
        return self._op("sub", o)

    def __rsub__(self, o: Size) -> Size:
        return self._op("sub", o, True)

    def __mul__(self, o: Size) -> Size:
        return self._op("mul", o)

    def __rmul__(self, o: Size) -> Size:
        return self._op("mul", o, True)

    def __neg__(self) -> Size:
        return 0 - self

    def __floordiv__(self, o: Size) -> Size:
        return self._op("div", o)

    def __rfloordiv__(self, o: Size) -> Size:
        return self._op("div", o, True)

    def __mod__(self, o: Size) -> Size:
        return self._op("mod", o)

    def __rmod__(self, o: Size) -> Size:
        return self._op("mod", o, True)

    # -- identity: two sizes are equal when they are the same expression
    def __eq__(self, o: object) -> bool:
        return isinstance(o, Sym) and o._key == self._key

    def __ne__(self, o: object) -> bool:
        return not self == o

    def __hash__(self) -> int:
        return hash(self._key)

    # -- anything that needs the value now
    def _refuse(self, *_: Any) -> Any:
        raise SymbolicSizeError(f"the size {self} is known only at run time")

    __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __int__ = __index__ = __float__ = _refuse

    def __repr__(self) -> str:
        return f"{self._key} (in {self.lo}..{self.hi})"


Size = int | Sym


def as_expr(d: Size) -> Expr:
    """The index expression of a size."""
    return d.expr if isinstance(d, Sym) else Const(int(d), INDEX)


def bounds(d: Size) -> tuple[int, int]:
    return (d.lo, d.hi) if isinstance(d, Sym) else (int(d), int(d))


def bound(d: Size) -> int:
    """The largest value of a size (what a buffer is sized for)."""
    return d.hi if isinstance(d, Sym) else int(d)


def describe(d: Size) -> str:
    return repr(d) if isinstance(d, Sym) else str(d)


def size_const(d: Size, dtype: DType) -> Expr:
    """A size as a value of `dtype` (a float count for means, ...)."""
    if isinstance(d, Sym):
        return Cast(dtype, d.expr) if dtype != INDEX else d.expr
    return Const(float(d) if dtype.is_float else int(d), dtype)


def size_max(a: Size, b: Size) -> Size:
    """max(a, b) of sizes (a run-time max when either is known only at run time)."""
    if not isinstance(a, Sym) and not isinstance(b, Sym):
        return max(int(a), int(b))
    (la, ha), (lb, hb) = bounds(a), bounds(b)
    return Sym(binop("max", as_expr(a), as_expr(b)), max(la, lb), max(ha, hb))


def size_min(a: Size, b: Size) -> Size:
    """min(a, b) of sizes (a run-time min when either is known only at run time)."""
    if not isinstance(a, Sym) and not isinstance(b, Sym):
        return min(int(a), int(b))
    (la, ha), (lb, hb) = bounds(a), bounds(b)
    return Sym(binop("min", as_expr(a), as_expr(b)), min(la, lb), min(ha, hb))


def size_prod(dims: tuple[Size, ...] | list[Size]) -> Size:
    return reduce(lambda a, b: a * b, dims, 1)


# ---------------------------------------------------------------- the model's symbols


class Symbols:
    """The range symbols of one model: their variables, and graph dims as sizes."""

    def __init__(self, ranges: Mapping[str, SymbolRange]) -> None:
        self.ranges = dict(ranges)
        self.order = list(self.ranges)  # slot k of the dims buffer holds symbol order[k]
        self.vars = {name: Var("dim_" + re.sub(r"\W", "_", name), INDEX) for name in self.order}
        self._sizes: dict[str, Size] = {}

    def covers(self, d: Dim) -> bool:
        """Whether `d` is an int or an expression of range symbols only."""
        try:
            self.value_of(d, {name: r.hi for name, r in self.ranges.items()})
        except SymbolicSizeError:
            return False
        return True

    def size(self, d: Dim) -> Size:
        if isinstance(d, int):
            return d
        if d not in self._sizes:
            self._sizes[d] = self._size(d)
        return self._sizes[d]

    def _size(self, d: str) -> Size:
        def leaf(name: str) -> Size:
            r = self.ranges[name]
            return Sym(self.vars[name], r.lo, r.hi) if r.lo != r.hi else r.lo

        return self._eval(d, leaf)

    def _eval(self, d: str, leaf: Callable[[str], Size]) -> Size:
        """Dim `d` (an int expression of range symbols) with each symbol replaced by `leaf(symbol)`."""
        try:
            return eval_dim(d, leaf, self.ranges)
        except DimError as err:
            raise SymbolicSizeError(str(err)) from None

    def shape(self, t: TensorType) -> tuple[Size, ...]:
        return tuple(self.size(d) for d in t.shape)

    def value_of(self, d: Dim, values: Mapping[str, int]) -> int:
        """The size of dim `d` when the symbols have `values`."""
        return d if isinstance(d, int) else int(self._eval(d, lambda name: int(values[name])))


_ACTIVE: ContextVar[Symbols | None] = ContextVar("aic_symbols", default=None)


@contextmanager
def active_symbols(symbols: Symbols | None) -> Iterator[None]:
    """Lowering inside this block reads symbolic dims through `symbols`."""
    token = _ACTIVE.set(symbols)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def current_symbols() -> Symbols | None:
    return _ACTIVE.get()


def shape_of(t: TensorType) -> tuple[Size, ...]:
    """The shape lowering works with: ints, and `Sym`s for run-time sizes."""
    if t.is_static:
        return t.static_shape
    symbols = _ACTIVE.get()
    if symbols is None:
        return t.static_shape  # raises: symbolic dims without ranges
    return symbols.shape(t)


def numel_bound(t: TensorType) -> int:
    """The largest element count of a value (its buffer's size)."""
    return bound(size_prod(list(shape_of(t))))
