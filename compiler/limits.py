"""Sizes a compiled model may have: refused at compile time, never overflowed at run time.

Byte counts and offsets are 64-bit in the generated code and the C ABI, so a tensor
whose size does not fit would wrap (a [2^32, 2^32] float input has 0 bytes). Well
below that, a tensor or a whole graph needing more than MAX_BYTES (1 TiB) is refused
too: no machine aic targets has that much memory, and failing at run time in an
allocator says much less than naming the value here.
"""

from __future__ import annotations

from collections.abc import Iterator

from aic.ir import Graph, Value

MAX_BYTES = 1 << 40


class SizeError(ValueError):
    """A tensor, or all of the model's tensors together, too large to compile."""


def check_sizes(graph: Graph, limit: int = MAX_BYTES) -> None:
    """Raise SizeError naming the first static tensor of `graph` (subgraphs included)
    larger than `limit` bytes, or the total when all of them together are."""
    total = 0
    for value in _values(graph):
        size = nbytes(value)
        if size > limit:
            raise SizeError(
                f"graph '{graph.name}': value '{value.name}' of type {value.type} needs {_amount(size)}, "
                f"more than aic compiles ({_amount(limit)})"
            )
        total += size
    if total > limit:
        raise SizeError(
            f"graph '{graph.name}': its tensors need {_amount(total)} together, more than aic compiles "
            f"({_amount(limit)})"
        )


def nbytes(value: Value) -> int:
    """Bytes of a tensor, its symbolic dims counted as 1 (exact Python ints: no overflow)."""
    n = value.type.dtype.itemsize
    for d in value.type.shape:
        n *= d if isinstance(d, int) else 1
    return n


def _values(graph: Graph) -> Iterator[Value]:
    seen: set[int] = set()
    for v in [*graph.inputs, *graph.constants(), *(o for n in graph.walk() for o in n.outputs)]:
        if v is not None and id(v) not in seen:
            seen.add(id(v))
            yield v


def _amount(size: int) -> str:
    for unit, scale in (("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20)):
        if size >= 1 << scale:
            return f"{size / (1 << scale):.4g} {unit} ({size} bytes)"
    return f"{size} bytes"
