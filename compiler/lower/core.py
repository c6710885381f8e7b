"""The vocabulary of lowering: tensor views, the lowering context, loop nests and index math.

A `Tensor` is a logical tensor during lowering: a static shape, an element type and
`at(index) -> Expr`, the scalar expression of one element. Materialized tensors load
from a buffer; fused producers are `ComputeTensor`s whose expression is inlined at
every use (bound once per index by `Let` when read several times).

Half-precision tensors (float16, bfloat16) compute in float32: loads widen, every op
result is rounded back to its element type, and stores narrow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import INDEX, Bin, Buffer, Cast, Const, Expr, For, Let, Load, Seq, Stmt, Store, Var
from aic.ir.loop_printer import expr_text
from aic.ir.loop_tools import binop

from .sizes import Size, Sym, as_expr, bound, current_symbols, size_prod

HALF = (DType.float16, DType.bfloat16)


class LoweringError(ValueError):
    """A node cannot be lowered to loop IR; the message names the node, op and shapes."""


def node_error(node: Node, message: str) -> LoweringError:
    return LoweringError(f"cannot lower {node.describe()}: {message}")


def cdtype(dtype: DType) -> DType:
    """The type arithmetic on `dtype` elements is done in."""
    return DType.float32 if dtype in HALF else dtype


def const(value: float | int | bool, dtype: DType) -> Const:
    """A scalar constant in the compute type of `dtype`."""
    dt = cdtype(dtype)
    if dt == DType.bool:
        return Const(bool(value), dt)
    return Const(float(value) if dt.is_float else int(value), dt)


def idx(value: Size) -> Expr:
    """An index expression of a size (a constant, or a run-time size's expression)."""
    return as_expr(value)


def round_to(value: Expr, dtype: DType) -> Expr:
    """Round a compute value to what `dtype` can hold (a no-op unless half precision)."""
    return Cast(DType.float32, Cast(dtype, value)) if dtype in HALF else value


def convert(value: Expr, dtype: DType) -> Expr:
    """Convert a compute value to the compute type of `dtype`, rounding for half types."""
    dt = cdtype(dtype)
    out = value if value.dtype == dt else Cast(dt, value)
    return round_to(out, dtype)


# ---------------------------------------------------------------- index math


def strides_of(shape: Sequence[Size]) -> list[Size]:
    out: list[Size] = [0] * len(shape)
    acc: Size = 1
    for i in range(len(shape) - 1, -1, -1):
        out[i] = acc
        acc *= shape[i]
    return out


def linear(index: Sequence[Expr], shape: Sequence[Size]) -> Expr:
    """Row-major flat index of `index` in `shape`. A pair of neighbouring entries (e div W, e mod W) over
    an axis of size W is e itself (exact for truncating division), so a flattened position stays affine."""
    flat: Expr = idx(0)
    strides = strides_of(shape)
    k = 0
    while k < len(index):
        i, s = index[k], strides[k]
        if k + 1 < len(index) and _split_pair(i, index[k + 1], shape[k + 1]):
            assert isinstance(i, Bin)
            i, s = i.a, strides[k + 1]
            k += 1
        flat = binop("add", flat, binop("mul", i, idx(s)))
        k += 1
    return flat


def _split_pair(hi: Expr, lo: Expr, size: Size) -> bool:
    """Whether (hi, lo) is (e div size, e mod size) for one expression e."""
    return (isinstance(hi, Bin) and hi.op == "div" and isinstance(lo, Bin) and lo.op == "mod" and hi.a == lo.a
            and isinstance(hi.b, Const) and hi.b.value == size and lo.b == hi.b)


def delinear(flat: Expr, shape: Sequence[Size]) -> list[Expr]:
    """Multi-index of a row-major flat index."""
    out = []
    for s, size in zip(strides_of(shape), shape):
        out.append(idx(0) if size == 1 else binop("mod", binop("div", flat, idx(s)), idx(size)))
    return out


def broadcast_index(index: Sequence[Expr], shape: Sequence[Size]) -> list[Expr]:
    """Index into `shape` (right-aligned, numpy broadcasting) of an element at `index`."""
    lead = len(index) - len(shape)
    return [idx(0) if d == 1 else index[lead + k] for k, d in enumerate(shape)]


# ---------------------------------------------------------------- tensors


class Tensor:
    shape: tuple[Size, ...]  # ints, and `Sym`s for sizes known at run time (sizes.py)
    dtype: DType

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> Size:
        return size_prod(self.shape)

    def at(self, index: Sequence[Expr]) -> Expr:
        raise NotImplementedError


class BufferTensor(Tensor):
    """Elements stored row-major in a buffer, created on first use (unused inputs need no parameter)."""

    def __init__(self, shape: Sequence[Size], dtype: DType, buffer: Callable[[], Buffer]) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self._buffer = buffer

    @property
    def buffer(self) -> Buffer:
        return self._buffer()

    def at(self, index: Sequence[Expr]) -> Expr:
        value: Expr = Load(self.buffer, linear(index, self.shape))
        return Cast(DType.float32, value) if self.dtype in HALF else value


class ConstTensor(Tensor):
    """A tensor whose elements all equal one compile-time value."""

    def __init__(self, shape: Sequence[Size], dtype: DType, value: float | int | bool) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.value = value

    def at(self, index: Sequence[Expr]) -> Expr:
        return const(self.value, self.dtype)


class ComputeTensor(Tensor):
    def __init__(self, shape: Sequence[Size], dtype: DType, fn: Callable[[list[Expr]], Expr]) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.fn = fn

    def at(self, index: Sequence[Expr]) -> Expr:
        return self.fn(list(index))


class SlotTensor(Tensor):
    """An anchor's output inside its epilogue: the value the anchor is storing right now."""

    def __init__(self, shape: Sequence[Size], dtype: DType) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.value: Expr | None = None
        self.index: list[str] = []

    def at(self, index: Sequence[Expr]) -> Expr:
        assert self.value is not None and [expr_text(i) for i in index] == self.index, "epilogue misaligned"
        return self.value


class MemoTensor(Tensor):
    """Binds each distinct element read to a `Let` variable, so a shared producer is computed once."""

    def __init__(self, inner: Tensor, ctx: LowerCtx) -> None:
        self.shape = inner.shape
        self.dtype = inner.dtype
        self.inner = inner
        self.ctx = ctx

    def at(self, index: Sequence[Expr]) -> Expr:
        key = (id(self), tuple(expr_text(i) for i in index))
        return self.ctx.memo(key, lambda: self.inner.at(index))


# ---------------------------------------------------------------- context


@dataclass
class _Scope:
    lets: list[tuple[Var, Expr]] = field(default_factory=list)
    memo: dict[tuple, Expr] = field(default_factory=dict)

    def wrap(self, body: Stmt) -> Stmt:
        for var, value in reversed(self.lets):
            body = Let(var, value, body)
        return body


@dataclass
class Param:
    """What a kernel parameter is bound to when the kernel is called."""

    buffer: Buffer
    kind: str  # "value" (a graph value), "weight" (an array made by lowering), "scratch", "errors", "sizes"
    value: object = None  # the graph Value, or the numpy array of a weight


class LowerCtx:
    """State of lowering one kernel: fresh names, Let scopes, parameters and lane width."""

    def __init__(self, lanes: int = 8, directives: Sequence[object] = (), site_base: int = 0) -> None:
        self.lanes = lanes  # float32 vector lanes of the target
        self.params: list[Param] = []
        self.site_base = site_base  # the program-wide number of this kernel's first check site
        self.sites: list[str] = []  # what each run-time check of this kernel tests (checks.py)
        self.checks: list[Stmt] = []  # run-time checks, run before the kernel's loops
        self._errors: Buffer | None = None
        self._counts: dict[str, int] = {}
        self._scopes: list[_Scope] = [_Scope()]
        self.hints: list[object] = []  # schedule records the lowering asks for
        self.directives = list(directives)  # lowering directives given by the kernel's schedule (tiling)
        self.typical_sizes: dict[Var, int] = {}  # the symbols the kernel reads -> their opt size (symbols.py)

    def fresh(self, hint: str) -> str:
        n = self._counts.get(hint, 0)
        self._counts[hint] = n + 1
        return f"{hint}{n}"

    def var(self, hint: str, dtype: DType = INDEX) -> Var:
        return Var(self.fresh(hint), dtype)

    # -- parameters
    def param(self, kind: str, dtype: DType, size: Size, value: object = None, hint: str = "p") -> Buffer:
        buf = Buffer(self.fresh(hint), dtype, bound(size))
        self.params.append(Param(buf, kind, value))
        return buf

    def weight(self, array: np.ndarray, hint: str = "w") -> BufferTensor:
        """A constant made at compile time (packed weights, tables), as a tensor."""
        array = np.ascontiguousarray(array)
        buf = self.param("weight", DType.from_numpy(array.dtype), array.size, array, hint)
        return BufferTensor(array.shape, DType.from_numpy(array.dtype), lambda: buf)

    def error_slot(self) -> Buffer:
        """The model's error slot (int64 code, site, value, position), shared by every kernel."""
        if self._errors is None:
            self._errors = self.param("errors", INDEX, 4, None, "err")
        return self._errors

    def scratch(self, dtype: DType, size: Size) -> Buffer:
        """A global temporary buffer living for this kernel only (planned in the arena)."""
        return self.param("scratch", dtype, size, None, "tmp")

    @contextmanager
    def vector_lanes(self, lanes: int) -> Iterator[None]:
        """Lower with vectors of at most `lanes` lanes (a layout whose contiguous runs are that short)."""
        target, self.lanes = self.lanes, min(self.lanes, lanes)
        try:
            yield
        finally:
            self.lanes = target

    # -- let scopes
    @contextmanager
    def scope(self) -> Iterator[_Scope]:
        sc = _Scope()
        self._scopes.append(sc)
        try:
            yield sc
        finally:
            self._scopes.pop()

    def let(self, value: Expr, hint: str = "t") -> Expr:
        """Bind `value` in the innermost scope; trivial values are returned as they are."""
        if isinstance(value, (Var, Const)):
            return value
        var = Var(self.fresh(hint), value.dtype)
        self._scopes[-1].lets.append((var, value))
        return var

    def memo(self, key: tuple, make: Callable[[], Expr]) -> Expr:
        for sc in reversed(self._scopes):
            if key in sc.memo:
                return sc.memo[key]
        value = self.let(make())
        self._scopes[-1].memo[key] = value
        return value

    # -- loops
    def loop(self, extent: Size, body: Callable[[Expr], Stmt], hint: str = "i") -> Stmt:
        """`for v in extent: body(v)` with its own Let scope; extent 1 binds v to 0, extent 0 is empty."""
        if isinstance(extent, Sym):
            v = self.var(hint)
            with self.scope() as sc:
                inner = sc.wrap(body(v))
            return For(v, extent.expr, inner)
        if extent <= 0:
            return Seq([])
        if extent == 1:
            with self.scope() as sc:
                return sc.wrap(body(idx(0)))
        v = self.var(hint)
        with self.scope() as sc:
            inner = sc.wrap(body(v))
        return For(v, idx(extent), inner)

    def loops(self, shape: Sequence[Size], body: Callable[[list[Expr]], Stmt], hint: str = "i") -> Stmt:
        """A loop nest over `shape` (outermost first)."""

        def level(k: int, index: list[Expr]) -> Stmt:
            if k == len(shape):
                with self.scope() as sc:
                    return sc.wrap(body(index))
            return self.loop(shape[k], lambda v: level(k + 1, [*index, v]), hint)

        return level(0, [])


def store(buf: Buffer, flat: Expr, value: Expr) -> Store:
    """Store a compute value, narrowing it to the buffer's element type."""
    if value.dtype != buf.dtype:
        value = Cast(buf.dtype, value)
    return Store(buf, flat, value)


def static_ints(node: Node, i: int, what: str) -> list[int] | None:
    """The contents of the node's small integer input `i`, known at compile time (None: input absent)."""
    if i >= len(node.inputs) or node.inputs[i] is None:
        return None
    v = node.inputs[i]
    if v.const is not None:
        return [int(x) for x in np.asarray(v.const).reshape(-1)]
    if v.sym is not None and all(isinstance(x, int) for x in v.sym):
        return [int(x) for x in v.sym]
    raise node_error(node, f"{what} (input {i}) must be known at compile time")


def static_sizes(node: Node, i: int, what: str) -> list[Size] | None:
    """As `static_ints`, with run-time sizes allowed (contents known as expressions of the range
    symbols, such as a slice's end `seq`)."""
    v = node.inputs[i] if i < len(node.inputs) else None
    symbols = current_symbols()
    if v is None or v.const is not None or v.sym is None or symbols is None:
        return static_ints(node, i, what)
    if not all(symbols.covers(d) for d in v.sym):
        raise node_error(node, f"{what} (input {i}) must be known at compile time")
    return [symbols.size(d) for d in v.sym]


def clamp(e: Expr, lo: Size, hi: Size) -> Expr:
    """min(max(e, lo), hi) on index expressions."""
    return binop("min", binop("max", e, idx(lo)), idx(hi))
