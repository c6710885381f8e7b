"""Einsum: Einstein summation over an equation such as ``"bij,bjk->bik"``.

The equation is parsed once into explicit terms (implicit outputs and ``...``
resolved), which drive both shape inference and the numpy reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dims import Dim, dim_prod
from ..dtypes import DType
from ..types import TensorType
from .common import broadcast_shapes, check_same_dtype
from .conv import compute_dtype
from .registry import Attr, InferContext, OpDef, register

EINSUM_TYPES = frozenset(
    {DType.float16, DType.bfloat16, DType.float32, DType.float64}
    | {DType.int8, DType.int16, DType.int32, DType.int64, DType.uint8, DType.uint16, DType.uint32, DType.uint64}
)
ELLIPSIS = "..."


@dataclass(frozen=True)
class Equation:
    inputs: tuple[tuple[str, ...], ...]  # per input: labels, with "..." as one label
    output: tuple[str, ...]

    def text(self) -> str:
        return ",".join("".join(t) for t in self.inputs) + "->" + "".join(self.output)


def _labels(term: str) -> tuple[str, ...]:
    if term.count(ELLIPSIS) > 1 or term.replace(ELLIPSIS, "").count("."):
        raise ValueError(f"term '{term}' has a malformed ellipsis")
    head, sep, tail = term.partition(ELLIPSIS)
    for ch in head + tail:
        if not ch.isascii() or not ch.isalpha():
            raise ValueError(f"term '{term}' has an invalid label '{ch}'")
    return (*head, *([ELLIPSIS] if sep else []), *tail)


def parse_equation(equation: str, num_inputs: int) -> Equation:
    """Parse an einsum equation; an implicit output lists the labels used
    once, sorted, after the ellipsis if any input has one. Raises ValueError."""
    text = equation.replace(" ", "")
    lhs, arrow, rhs = text.partition("->")
    inputs = tuple(_labels(t) for t in lhs.split(","))
    if len(inputs) != num_inputs:
        raise ValueError(f"equation '{equation}' has {len(inputs)} input terms for {num_inputs} inputs")
    if arrow:
        output = _labels(rhs)
        used = {label for term in inputs for label in term}
        if len(set(output)) != len(output) or not set(output) <= used | {ELLIPSIS}:
            raise ValueError(f"output term '{rhs}' repeats labels or uses labels absent from the inputs")
        if ELLIPSIS in output and ELLIPSIS not in used:
            raise ValueError(f"output term '{rhs}' has an ellipsis that no input has")
    else:
        counts: dict[str, int] = {}
        for label in (label for term in inputs for label in term if label != ELLIPSIS):
            counts[label] = counts.get(label, 0) + 1
        ellipsis = (ELLIPSIS,) if any(ELLIPSIS in t for t in inputs) else ()
        output = (*ellipsis, *sorted(label for label, n in counts.items() if n == 1))
    return Equation(inputs, output)


def _dims(ctx: InferContext, eq: Equation) -> tuple[dict[str, Dim], tuple[Dim, ...]]:
    """Size of every label, and the broadcast shape of the ellipsis."""
    sizes: dict[str, Dim] = {}
    ellipses: list[tuple[Dim, ...]] = []
    for i, term in enumerate(eq.inputs):
        shape = ctx.input(i).shape
        named = len(term) - (ELLIPSIS in term)
        if len(shape) < named or (ELLIPSIS not in term and len(shape) != named):
            raise ctx.error(f"term '{''.join(term)}' does not fit input {i} of rank {len(shape)}")
        position = 0
        for label in term:
            if label == ELLIPSIS:
                width = len(shape) - named
                ellipses.append(tuple(shape[position : position + width]))
                position += width
                continue
            dim, known = shape[position], sizes.get(label)
            if known is None or (isinstance(known, str) and isinstance(dim, int)):
                sizes[label] = dim
            elif isinstance(known, int) and isinstance(dim, int) and known != dim:
                raise ctx.error(f"label '{label}' has sizes {known} and {dim}")
            position += 1
    return sizes, broadcast_shapes(ctx, *ellipses)


def _equation(ctx: InferContext) -> Equation:
    try:
        return parse_equation(ctx.attrs["equation"], len(ctx.types))
    except ValueError as err:
        raise ctx.error(str(err)) from None


def _einsum_infer(ctx: InferContext) -> list[TensorType]:
    dtype = check_same_dtype(ctx, *range(len(ctx.types)))
    eq = _equation(ctx)
    sizes, ellipsis = _dims(ctx, eq)
    shape = [d for label in eq.output for d in (ellipsis if label == ELLIPSIS else (sizes[label],))]
    return [TensorType(dtype, tuple(shape))]


def _einsum_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    arrays = [a for a in inputs if a is not None]
    eq = parse_equation(attrs["equation"], len(arrays))
    dtype = arrays[0].dtype
    ct = compute_dtype(dtype) if DType.from_numpy(dtype).is_float else dtype
    y = np.einsum(eq.text(), *(a.astype(ct, copy=False) for a in arrays), optimize=True)
    return [np.asarray(y).astype(dtype, copy=False)]


def _einsum_flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict[str, Any]) -> Dim:
    """Two operations per point of the joint iteration space of all labels."""
    shapes = [t.shape for t in ins if t is not None]
    eq = parse_equation(attrs["equation"], len(shapes))
    seen: dict[str, Dim] = {}
    ellipsis: tuple[Dim, ...] = ()
    for term, shape in zip(eq.inputs, shapes):
        width = len(shape) - len(term) + 1
        position = 0
        for label in term:
            if label == ELLIPSIS:
                ellipsis = max(ellipsis, tuple(shape[position : position + width]), key=len)
                position += width
            else:
                seen.setdefault(label, shape[position])
                position += 1
    return dim_prod([2, *seen.values(), *ellipsis])


Einsum = register(
    OpDef(
        "Einsum",
        _einsum_infer,
        _einsum_reference,
        attrs={"equation": Attr("string")},
        inputs=(1, -1),
        dtypes=EINSUM_TYPES,
        kind="contraction",
        flops=_einsum_flops,
        doc="Einstein summation; supports implicit outputs, repeated labels (traces) and ellipses.",
    )
)
