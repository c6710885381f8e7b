"""Helpers for ops whose output sizes depend on tensor contents (shapes, axes,
pads, repeats): reading known integer inputs, falling back to fresh symbols,
and keeping the symbolic contents of small shape tensors."""

from __future__ import annotations

from collections.abc import Sequence

from ..dims import Dim
from ..types import TensorType
from .registry import InferContext

MAX_SYM = 64  # shape-like tensors up to this many elements carry symbolic contents


def _is_small(ctx: InferContext, i: int) -> bool:
    t = ctx.input(i)
    return t.rank <= 1 and isinstance(t.numel, int) and t.numel <= MAX_SYM


def int_values(ctx: InferContext, i: int) -> list[int] | None:
    """Contents of the small input i when known and all plain ints (axes, steps...), else None."""
    values = ctx.values(i) if _is_small(ctx, i) else None
    if values is None or not all(isinstance(v, int) for v in values):
        return None
    return values  # type: ignore[return-value]


def vector_length(ctx: InferContext, i: int, what: str) -> int:
    """Static length of the 1-D input i (a shape, pads, repeats vector)."""
    t = ctx.input(i)
    if t.rank != 1:
        raise ctx.error(f"{what} must be a 1-D tensor, got {t}")
    n = t.shape[0]
    if not isinstance(n, int):
        raise ctx.error(f"{what} has an unknown length {n!r}; the output rank cannot be inferred")
    return n


def shape_from_input(ctx: InferContext, i: int, what: str = "shape") -> list[Dim]:
    """Dims given by the 1-D input i: its known contents, or fresh symbols."""
    n = vector_length(ctx, i, what)
    values = ctx.values(i)
    if values is None:
        return [ctx.fresh() for _ in range(n)]
    for v in values:
        if isinstance(v, int) and v < 0:
            raise ctx.error(f"{what} {values} has a negative dim")
    return list(values)


def small(out: TensorType, contents: Sequence[Dim] | None) -> tuple[Dim, ...] | None:
    """`contents` as symbolic contents of `out` if it is a small 0-D/1-D integer tensor."""
    if contents is None or not out.dtype.is_int or out.rank > 1 or len(contents) > MAX_SYM:
        return None
    if out.rank == 1 and out.shape[0] != len(contents):
        return None
    return tuple(contents)


def input_sym(ctx: InferContext, i: int) -> tuple[Dim, ...] | None:
    """Symbolic contents of the small integer input i if known (constant or propagated)."""
    if not ctx.input(i).dtype.is_int or not _is_small(ctx, i):
        return None
    values = ctx.values(i)
    return None if values is None else tuple(values)


def optional(inputs: list, i: int):
    """Reference-side: input i, or None when it is omitted (trailing omitted inputs are dropped)."""
    return inputs[i] if i < len(inputs) else None
