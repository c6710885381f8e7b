"""The op table: one `OpDef` record per op.

Each record holds the op's attribute schema, its type and shape inference, its
symbolic value propagation (for shape arithmetic), its numpy reference semantics
and a FLOP count. Constant folding, the reference interpreter, the test oracle
and `aic inspect` all read this one table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..dims import Dim
from ..dtypes import DType
from ..types import TensorType

REQUIRED = object()
ATTR_KINDS = ("int", "float", "string", "ints", "floats", "strings", "tensor", "graph")


class OpError(ValueError):
    """A node is malformed: wrong attributes, input types or shapes."""


@dataclass(frozen=True)
class Attr:
    kind: str
    default: Any = REQUIRED
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        assert self.kind in ATTR_KINDS, self.kind


@dataclass
class InferContext:
    """What type inference sees of one node."""

    op: str
    node_name: str
    types: list[TensorType | None]
    attrs: dict[str, Any]
    consts: list[np.ndarray | None]
    syms: list[tuple[Dim, ...] | None]
    num_outputs: int
    _fresh: list[int] = field(default_factory=lambda: [0])

    def has(self, i: int) -> bool:
        return i < len(self.types) and self.types[i] is not None

    def input(self, i: int) -> TensorType:
        if not self.has(i):
            raise self.error(f"input {i} is required")
        return self.types[i]  # type: ignore[return-value]

    def const(self, i: int) -> np.ndarray | None:
        return self.consts[i] if i < len(self.consts) else None

    def values(self, i: int) -> list[Dim] | None:
        """Contents of a small integer input (a shape, axes, pads): ints or
        symbols, or None when not known at compile time."""
        if not self.has(i):
            return None
        c = self.const(i)
        if c is not None:
            c = np.asarray(c)
            if c.dtype.kind not in "biu" and not np.all(np.isfinite(c)):
                return None  # not a size: a float constant such as -inf
            return [int(v) for v in c.reshape(-1)]
        s = self.syms[i] if i < len(self.syms) else None
        return list(s) if s is not None else None

    def fresh(self, hint: str = "d") -> str:
        """A new symbolic dim for a size that cannot be known at compile time."""
        self._fresh[0] += 1
        return f"{self.node_name or self.op}_{hint}{self._fresh[0]}"

    def error(self, message: str) -> OpError:
        ins = ", ".join(str(t) if t else "-" for t in self.types)
        return OpError(f"{self.op} node '{self.node_name}' with inputs ({ins}): {message}")


InferFn = Callable[[InferContext], list[TensorType]]
PropagateFn = Callable[[InferContext], list[tuple[Dim, ...] | None]]
ReferenceFn = Callable[[list[np.ndarray | None], dict[str, Any]], list[np.ndarray]]
FlopsFn = Callable[[list[TensorType | None], list[TensorType], dict[str, Any]], Dim]


@dataclass(frozen=True)
class OpDef:
    """One op: its schema, inference and reference semantics.

    `inputs`/`outputs` are (min, max) counts; max -1 means variadic.
    `dtypes` lists the element types the first input may have (None: any).
    `kind` groups ops for later stages: "elementwise", "reduction",
    "movement" (data layout / indexing), "contraction", "control", "other".
    """

    name: str
    infer: InferFn
    reference: ReferenceFn
    attrs: dict[str, Attr] = field(default_factory=dict)
    inputs: tuple[int, int] = (1, 1)
    outputs: tuple[int, int] = (1, 1)
    dtypes: frozenset[DType] | None = None
    kind: str = "other"
    propagate: PropagateFn | None = None
    flops: FlopsFn | None = None
    doc: str = ""

    def check_attrs(self, attrs: dict[str, Any], node_name: str = "") -> dict[str, Any]:
        """Validate attributes and fill defaults. Raises OpError naming the node."""
        where = f"{self.name} node '{node_name}'"
        unknown = sorted(set(attrs) - set(self.attrs))
        if unknown:
            raise OpError(f"{where}: unknown attribute(s) {unknown}; {self.name} takes {sorted(self.attrs)}")
        out: dict[str, Any] = {}
        for name, spec in self.attrs.items():
            if name in attrs and not (attrs[name] is None and spec.default is None):  # None: an absent optional
                out[name] = _coerce(spec, attrs[name], f"{where} attribute '{name}'")
            elif spec.default is REQUIRED:
                raise OpError(f"{where}: missing required attribute '{name}'")
            else:
                out[name] = spec.default
        return out


def _coerce(spec: Attr, value: Any, where: str) -> Any:
    kind = spec.kind
    try:
        if kind == "int":
            if isinstance(value, (float, np.floating)) and not float(value).is_integer():
                raise TypeError
            value = int(value)
        elif kind == "float":
            value = float(value)
        elif kind == "string":
            value = value.decode() if isinstance(value, bytes) else str(value)
        elif kind == "ints":
            value = [int(v) for v in value]
        elif kind == "floats":
            value = [float(v) for v in value]
        elif kind == "strings":
            value = [v.decode() if isinstance(v, bytes) else str(v) for v in value]
        elif kind == "tensor":
            value = np.asarray(value)
    except (TypeError, ValueError):
        raise OpError(f"{where} must be of kind {kind}, got {value!r}") from None
    if spec.choices is not None and value not in spec.choices:
        raise OpError(f"{where} is {value!r}; expected one of {list(spec.choices)}")
    return value


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in OPS:
        raise ValueError(f"op {op.name} registered twice")
    OPS[op.name] = op
    return op


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise OpError(f"unknown op {name!r}") from None


def infer_node(
    op_name: str,
    inputs: Sequence[Any],
    attrs: dict[str, Any],
    num_outputs: int,
    node_name: str = "",
) -> tuple[list[TensorType], list[tuple[Dim, ...] | None]]:
    """Run an op's inference on `inputs` (Values or None). Returns output
    types and symbolic contents. Checks input counts and dtypes."""
    op = get_op(op_name)
    lo, hi = op.inputs
    if len(inputs) < lo or (hi != -1 and len(inputs) > hi):
        raise OpError(f"{op_name} node '{node_name}': takes {lo}..{'' if hi == -1 else hi} inputs, got {len(inputs)}")
    ctx = InferContext(
        op=op_name,
        node_name=node_name,
        types=[v.type if v is not None else None for v in inputs],
        attrs=attrs,
        consts=[v.const if v is not None else None for v in inputs],
        syms=[v.sym if v is not None else None for v in inputs],
        num_outputs=num_outputs,
    )
    if op.dtypes is not None and ctx.has(0) and ctx.input(0).dtype not in op.dtypes:
        raise ctx.error(
            f"element type {ctx.input(0).dtype.name} is not supported; "
            f"expected one of {sorted(d.name for d in op.dtypes)}"
        )
    types = op.infer(ctx)
    if len(types) != num_outputs:
        types = types[:num_outputs]
    syms = op.propagate(ctx) if op.propagate else [None] * len(types)
    return types, list(syms) + [None] * (len(types) - len(syms))
