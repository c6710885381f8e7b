"""Schedule records: loop transformations as data.

A schedule is a tuple of records naming loops by their variable's name. Records are
frozen dataclasses: they compare, hash, print, and replay (``compiler/schedule.py``
applies them to a kernel). Loops made by a record get derived names: ``Split("i", 8)``
turns loop ``i`` into ``i.o`` (outer) and ``i.i`` (inner); ``Fuse("a", "b")`` makes
``a.b``; ``Vectorize("j", 8)`` leaves ``j.v`` over whole vectors and ``j.t`` for the
remainder. `MicroKernel`, `CachePack` and `TileOrder` are directives read by the lowering
of contractions: they choose the register tile, a packed weight layout and the order of the
tile loops before any loop exists, and are kept in the kernel's schedule so it prints whole.
"""

from __future__ import annotations

from dataclasses import dataclass


class ScheduleError(ValueError):
    """A record does not apply to the kernel (no such loop, not a perfect nest, ...)."""


@dataclass(frozen=True)
class Split:
    loop: str
    factor: int

    def __str__(self) -> str:
        return f"split({self.loop}, {self.factor})"


@dataclass(frozen=True)
class Reorder:
    loops: tuple[str, ...]

    def __str__(self) -> str:
        return f"reorder({', '.join(self.loops)})"


@dataclass(frozen=True)
class Fuse:
    outer: str
    inner: str

    def __str__(self) -> str:
        return f"fuse({self.outer}, {self.inner})"


@dataclass(frozen=True)
class Tile:
    """Split `x` by `fx` and `y` by `fy`, then order x.o, y.o, x.i, y.i."""

    x: str
    y: str
    fx: int
    fy: int

    def __str__(self) -> str:
        return f"tile({self.x}, {self.y}, {self.fx}, {self.fy})"


@dataclass(frozen=True)
class Vectorize:
    loop: str
    lanes: int

    def __str__(self) -> str:
        return f"vectorize({self.loop}, {self.lanes})"


@dataclass(frozen=True)
class Parallel:
    loop: str

    def __str__(self) -> str:
        return f"parallel({self.loop})"


@dataclass(frozen=True)
class Unroll:
    loop: str

    def __str__(self) -> str:
        return f"unroll({self.loop})"


@dataclass(frozen=True)
class Bind:
    """Bind a loop to a GPU axis: "blockIdx.x", "threadIdx.x", ..."""

    loop: str
    axis: str

    def __str__(self) -> str:
        return f"bind({self.loop}, {self.axis})"


@dataclass(frozen=True)
class CachePack:
    """Pack constant operand `operand` into panels of `panel` columns (a lowering directive)."""

    operand: int
    panel: int

    def __str__(self) -> str:
        return f"cache_pack(input {self.operand}, {self.panel})"


@dataclass(frozen=True)
class MicroKernel:
    """Compute `rows` x `cols` output tiles in registers (a lowering directive)."""

    rows: int
    cols: int

    def __str__(self) -> str:
        return f"micro_kernel({self.rows}, {self.cols})"


@dataclass(frozen=True)
class TileOrder:
    """Which tile loop of a register-tiled product is outermost: "rows" or "cols" (a lowering directive)."""

    outer: str

    def __str__(self) -> str:
        return f"tile_order({self.outer})"


@dataclass(frozen=True)
class Winograd:
    """Whether a 3x3 stride-1 convolution runs as Winograd F(4,3) (`on`) or as the direct kernel (a lowering
    directive; by default a rule decides)."""

    on: bool

    def __str__(self) -> str:
        return f"winograd({'on' if self.on else 'off'})"


DIRECTIVES = (CachePack, MicroKernel, TileOrder, Winograd)

Record = (MicroKernel | Split | Reorder | Fuse | Tile | Vectorize | Parallel | Unroll | Bind | CachePack | TileOrder
          | Winograd)


def schedule_text(records: tuple[Record, ...] | list[Record]) -> str:
    return "; ".join(str(r) for r in records) or "(default loops)"
