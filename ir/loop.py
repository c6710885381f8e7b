"""Loop IR: kernels as loop nests over flat buffers.

Expressions are immutable trees with a dtype and a lane count (1 for scalars,
n for vectors). Statements are loops with a `ForKind` (serial, parallel,
vectorized, unrolled, GPU block/thread bindings), stores, local allocations,
conditionals and sequences. Both the LLVM and the CUDA targets render from
this one IR.

Buffers are flat arrays indexed by element. A `Kernel` takes buffers as
parameters; a `Program` runs steps in order over the model's buffers: kernel
calls, and the control flow of If/Loop/Scan (`IfStep`, `LoopStep`) around them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .dims import Dim
from .dtypes import DType

INDEX = DType.int64


# ---------------------------------------------------------------- buffers


class Scope(enum.Enum):
    GLOBAL = "global"  # a kernel parameter
    STACK = "stack"  # a local array (registers / stack)
    SHARED = "shared"  # GPU shared memory


@dataclass(frozen=True, eq=False)
class Buffer:
    """A flat array of `size` elements. Identity is by object."""

    name: str
    dtype: DType
    size: Dim
    scope: Scope = Scope.GLOBAL

    def __repr__(self) -> str:
        return f"{self.name}: {self.dtype.short}[{self.size}]"


# ---------------------------------------------------------------- expressions


class Expr:
    dtype: DType
    lanes: int = 1

    # Operator sugar so lowering code reads like math.
    def __add__(self, o: Any) -> Expr:
        return Bin("add", self, wrap(o, self.dtype))

    def __radd__(self, o: Any) -> Expr:
        return Bin("add", wrap(o, self.dtype), self)

    def __sub__(self, o: Any) -> Expr:
        return Bin("sub", self, wrap(o, self.dtype))

    def __rsub__(self, o: Any) -> Expr:
        return Bin("sub", wrap(o, self.dtype), self)

    def __mul__(self, o: Any) -> Expr:
        return Bin("mul", self, wrap(o, self.dtype))

    def __rmul__(self, o: Any) -> Expr:
        return Bin("mul", wrap(o, self.dtype), self)

    def __floordiv__(self, o: Any) -> Expr:
        return Bin("div", self, wrap(o, self.dtype))

    def __mod__(self, o: Any) -> Expr:
        return Bin("mod", self, wrap(o, self.dtype))


@dataclass(frozen=True, eq=False)
class Var(Expr):
    """A loop index, or a scalar (lanes 1) or vector bound by `Let`."""

    name: str
    dtype: DType = INDEX
    lanes: int = 1


@dataclass(frozen=True)
class Const(Expr):
    value: int | float | bool
    dtype: DType = INDEX
    lanes: int = 1


BIN_OPS = frozenset(
    "add sub mul div mod min max and or xor shl shr eq ne lt le gt ge".split()
)  # div/mod on ints truncate toward zero (C semantics); on floats they are / and fmod
CMP_OPS = frozenset("eq ne lt le gt ge".split())


@dataclass(frozen=True)
class Bin(Expr):
    op: str
    a: Expr
    b: Expr

    def __post_init__(self) -> None:
        assert self.op in BIN_OPS, self.op
        assert self.a.dtype == self.b.dtype, f"{self.op}: {self.a.dtype} vs {self.b.dtype}"
        assert self.a.lanes == self.b.lanes, f"{self.op}: lanes {self.a.lanes} vs {self.b.lanes}"

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return DType.bool if self.op in CMP_OPS else self.a.dtype

    @property
    def lanes(self) -> int:  # type: ignore[override]
        return self.a.lanes


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # "neg" | "not"
    a: Expr

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.a.dtype

    @property
    def lanes(self) -> int:  # type: ignore[override]
        return self.a.lanes


@dataclass(frozen=True)
class Select(Expr):
    cond: Expr
    a: Expr
    b: Expr

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.a.dtype

    @property
    def lanes(self) -> int:  # type: ignore[override]
        return self.a.lanes


@dataclass(frozen=True)
class Cast(Expr):
    dtype: DType
    a: Expr

    @property
    def lanes(self) -> int:  # type: ignore[override]
        return self.a.lanes


@dataclass(frozen=True)
class Load(Expr):
    """`lanes` consecutive elements of `buffer` starting at element `index`."""

    buffer: Buffer
    index: Expr
    lanes: int = 1

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.buffer.dtype


# Intrinsics every target provides; anything else is decomposed before codegen. The int8 dot products
# `dot4(acc, a, b)` (acc, a, b int32) and `dot2(acc, a, b)` (acc int32; a, b int16) add to each lane of
# acc the sum over the bytes q of the lane of a and b of uint8(a byte q) * int8(b byte q), wrapping
# (x86 `vpdpbusd`, `vpmaddwd` on the bytes widened); `dotw(acc, a, b)` (all int32) adds the sum of the
# products of the two int16 halves of a and b (`vpmaddwd`); `dot4sat(acc, a, b)` is dot4 with each of the two
# pair sums (bytes 0+1, 2+3) saturated to int16 first (x86 `vpmaddubsw` then `vpmaddwd` by ones), for
# weights chosen so that no pair saturates. The CPU target renders them; CUDA does not.
# `sigmoid(x)` is 1 / (1 + exp(-x)); `exp_nonpos(x)` is exp(min(x, 0)) (a softmax's shifted scores, which
# need no overflow handling).
INTRINSICS = frozenset(
    "exp exp_nonpos log sqrt tanh erf sin cos tan asin acos atan sinh cosh asinh acosh atanh "
    "abs floor ceil round trunc pow fma sigmoid dot4 dot2 dotw dot4sat".split()
)


@dataclass(frozen=True)
class Call(Expr):
    """An intrinsic math function applied lane-wise; the dtype is that of the first argument."""

    fn: str
    args: tuple[Expr, ...]

    def __post_init__(self) -> None:
        assert self.fn in INTRINSICS, self.fn

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.args[0].dtype

    @property
    def lanes(self) -> int:  # type: ignore[override]
        return self.args[0].lanes


@dataclass(frozen=True)
class Ramp(Expr):
    """The vector base, base+stride, ..., base+(lanes-1)*stride."""

    base: Expr
    stride: int
    lanes: int

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.base.dtype


@dataclass(frozen=True)
class Broadcast(Expr):
    value: Expr
    lanes: int

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.value.dtype


@dataclass(frozen=True)
class Interleave(Expr):
    """Vectors of equal lanes taken lane by lane: parts[0][0], parts[1][0], ..., parts[0][1], ... (the values of
    s stores to s*i + 0, ..., s*i + s-1, stored as one contiguous vector)."""

    parts: tuple[Expr, ...]

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.parts[0].dtype

    @property
    def lanes(self) -> int:  # type: ignore[override]
        return sum(p.lanes for p in self.parts)


def children(e: Expr) -> tuple[Expr, ...]:
    """The direct subexpressions of `e`, in order."""
    match e:
        case Bin(a=a, b=b):
            return (a, b)
        case Unary(a=a) | Cast(a=a):
            return (a,)
        case Select(cond=c, a=a, b=b):
            return (c, a, b)
        case Load(index=i):
            return (i,)
        case Call(args=args):
            return args
        case Ramp(base=base):
            return (base,)
        case Broadcast(value=v):
            return (v,)
        case Interleave(parts=parts):
            return parts
    return ()


def wrap(value: Any, dtype: DType = INDEX) -> Expr:
    return value if isinstance(value, Expr) else Const(value, dtype)


def const(value: int | float | bool, dtype: DType) -> Const:
    return Const(value, dtype)


# ---------------------------------------------------------------- statements


class Stmt:
    pass


class ForKind(enum.Enum):
    SERIAL = "serial"
    PARALLEL = "parallel"  # split across the runtime's thread pool
    VECTORIZED = "vectorized"  # lanes of one vector (the extent is the lane count)
    UNROLLED = "unrolled"
    GPU_BLOCK_X = "blockIdx.x"
    GPU_BLOCK_Y = "blockIdx.y"
    GPU_BLOCK_Z = "blockIdx.z"
    GPU_THREAD_X = "threadIdx.x"
    GPU_THREAD_Y = "threadIdx.y"
    GPU_THREAD_Z = "threadIdx.z"

    @property
    def is_gpu(self) -> bool:
        return self.value.startswith(("block", "thread"))


@dataclass(eq=False)
class For(Stmt):
    var: Var
    extent: Expr
    body: Stmt
    kind: ForKind = ForKind.SERIAL
    start: Expr = field(default_factory=lambda: Const(0))


@dataclass(eq=False)
class Store(Stmt):
    """Write `value` (scalar or vector) to `buffer` at element `index`."""

    buffer: Buffer
    index: Expr
    value: Expr


@dataclass(eq=False)
class Let(Stmt):
    """Bind `var` to `value` within `body`."""

    var: Var
    value: Expr
    body: Stmt


@dataclass(eq=False)
class Allocate(Stmt):
    """A local buffer (stack, or GPU shared memory) alive within `body`."""

    buffer: Buffer
    body: Stmt


@dataclass(eq=False)
class If(Stmt):
    cond: Expr
    then: Stmt
    orelse: Stmt | None = None


@dataclass(eq=False)
class Seq(Stmt):
    stmts: list[Stmt]


@dataclass(eq=False)
class Prefetch(Stmt):
    """Ask for the cache line of `buffer[index]` to be brought near (a load that is never waited for);
    no effect on results, a no-op on targets without it."""

    buffer: Buffer
    index: Expr


@dataclass(eq=False)
class Barrier(Stmt):
    """GPU block-level barrier (__syncthreads); a no-op on CPUs."""


# ---------------------------------------------------------------- kernels and programs


@dataclass(eq=False)
class Kernel:
    """One generated function: `params` are global buffers, in call order."""

    name: str
    params: list[Buffer]
    body: Stmt
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class ProgramBuffer:
    """A buffer of the whole model: an input, an output, a weight or an arena slice."""

    name: str
    dtype: DType
    shape: tuple[int, ...]
    kind: str  # "input" | "output" | "weight" | "arena"
    offset: int = 0  # byte offset within the arena (kind "arena") or the weight blob (kind "weight")
    data: Any = None  # the numpy array of a weight
    # An output's data-dependent dims (shape holds their upper bounds): dim -> (symbol, arena byte
    # offset of the int64 holding its size after a run); see compiler/lower/dynamic.py.
    dynamic: dict[int, tuple[str, int]] = field(default_factory=dict)
    dims: tuple[Dim, ...] | None = None  # the graph dims of a value sized at run time (`shape` holds the largest)
    # An arena slice placed inside another arena buffer (a Concat's input in its slab of the
    # Concat's buffer): `offset` is absolute; its bytes are part of `within`'s, which owns the lifetime.
    within: ProgramBuffer | None = None


@dataclass(eq=False)
class RowView(ProgramBuffer):
    """Kind "row": row i of `base`, a stack of `length` rows of this shape, where i is the value of
    the int64 `counter` (length-1-i when `reverse`): a loop's scan slice, addressed in place."""

    base: ProgramBuffer | None = None
    counter: ProgramBuffer | None = None
    length: int = 0
    reverse: bool = False


@dataclass(eq=False)
class KernelCall:
    kernel: Kernel
    args: list[ProgramBuffer]
    # What the call computes, for inspection: "group" (its ops), "nodes", "flops", "refusals" (fusion)
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class IfStep:
    """Run the `then` steps when the bool in `cond` is true, else the `orelse` steps."""

    cond: ProgramBuffer
    then: list[Step]
    orelse: list[Step]


@dataclass(eq=False)
class LoopStep:
    """Set the int64 `counter` to 0, then run `body` while counter < `trips` (a constant or an int64
    buffer; None: no limit) and the bool in `cond` is true (None: always), adding 1 to counter after each run."""

    counter: ProgramBuffer
    body: list[Step]
    trips: ProgramBuffer | int | None = None
    cond: ProgramBuffer | None = None


Step = KernelCall | IfStep | LoopStep


def step_buffers(steps: list[Step]) -> Iterator[ProgramBuffer]:
    """Every buffer `steps` use (kernel arguments, flags, counters, trip counts; the stack and
    counter of a row view), with repeats."""
    for step in steps:
        if isinstance(step, KernelCall):
            for arg in step.args:
                while isinstance(arg, RowView):  # a row of a row: a scan slice of a scan slice
                    yield arg.counter  # type: ignore[misc]
                    arg = arg.base  # type: ignore[assignment]
                yield arg
        elif isinstance(step, IfStep):
            yield step.cond
            yield from step_buffers(step.then)
            yield from step_buffers(step.orelse)
        else:
            yield step.counter
            yield from (x for x in (step.trips, step.cond) if isinstance(x, ProgramBuffer))
            yield from step_buffers(step.body)


def kernel_calls(steps: list[Step]) -> Iterator[KernelCall]:
    """Every kernel call in `steps`, control-flow bodies included, in program order."""
    for step in steps:
        if isinstance(step, KernelCall):
            yield step
        elif isinstance(step, IfStep):
            yield from kernel_calls(step.then)
            yield from kernel_calls(step.orelse)
        else:
            yield from kernel_calls(step.body)


@dataclass(eq=False)
class Program:
    """Everything the codegen renders: kernels, and the steps the entry function runs."""

    name: str
    kernels: list[Kernel]
    calls: list[Step]
    inputs: list[ProgramBuffer]
    outputs: list[ProgramBuffer]
    weights: list[ProgramBuffer]
    arena_bytes: int
    attrs: dict[str, Any] = field(default_factory=dict)
