"""Memory planning: every intermediate buffer gets a byte offset in one arena.

Each buffer lives from the kernel that writes it first to the last kernel that reads it
(inclusive, so a kernel's inputs and outputs never share bytes). Buffers whose lifetimes
do not overlap may reuse the same bytes. Placement is greedy by size, largest first,
each at the lowest 64-byte-aligned offset that does not collide with a placed buffer
alive at the same time. Views (Reshape, Squeeze, Unsqueeze, Flatten, Identity) are not
buffers: they extend the lifetime of the buffer they view. A buffer placed inside another
(`ProgramBuffer.within`: a Concat's input in its slab) is part of that buffer's bytes and lifetime.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aic.ir.loop import Program, ProgramBuffer, step_buffers

from .storage import nbytes

ALIGN = 64


def align(n: int, to: int = ALIGN) -> int:
    return -(-n // to) * to


@dataclass
class Lifetime:
    """A buffer of `nbytes` written at step `first` and last read at step `last`."""

    key: object
    nbytes: int
    first: int
    last: int

    def overlaps(self, other: Lifetime) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class ArenaPlan:
    offsets: dict[object, int] = field(default_factory=dict)
    peak_bytes: int = 0  # the arena size
    peak_at: dict[str, int] = field(default_factory=dict)  # run-time sizes: the peak each of min/opt/max needs
    total_bytes: int = 0  # what separate buffers would take (aligned)

    def report(self) -> str:
        saved = self.total_bytes - self.peak_bytes
        n = len(self.offsets)
        return f"arena {self.peak_bytes} bytes for {n} buffers ({self.total_bytes} unshared, {saved} saved)"


def plan_arena(lifetimes: list[Lifetime]) -> ArenaPlan:
    """Assign offsets so that buffers alive at the same step never share bytes."""
    plan = ArenaPlan(total_bytes=sum(align(lt.nbytes) for lt in lifetimes))
    placed: list[tuple[int, int, Lifetime]] = []  # (offset, end, lifetime)
    order = sorted(lifetimes, key=lambda lt: (-align(lt.nbytes), lt.first, lt.last))
    for lt in order:
        size = align(max(lt.nbytes, 1))
        busy = sorted((o, e) for o, e, other in placed if other.overlaps(lt))
        offset = 0
        for o, e in busy:
            if offset + size <= o:
                break
            offset = max(offset, align(e))
        placed.append((offset, offset + size, lt))
        plan.offsets[lt.key] = offset
        plan.peak_bytes = max(plan.peak_bytes, offset + size)
    return plan


def check_plan(lifetimes: list[Lifetime], plan: ArenaPlan) -> None:
    """Raise AssertionError if two buffers alive at once overlap in memory or misalign."""
    spans = [(plan.offsets[lt.key], plan.offsets[lt.key] + lt.nbytes, lt) for lt in lifetimes]
    for o, e, lt in spans:
        assert o % ALIGN == 0, f"{lt.key} at unaligned offset {o}"
        assert e <= plan.peak_bytes, f"{lt.key} ends past the arena"
    for i, (o1, e1, a) in enumerate(spans):
        for o2, e2, b in spans[i + 1 :]:
            if a.overlaps(b) and o1 < e2 and o2 < e1 and a.nbytes and b.nbytes:
                raise AssertionError(f"{a.key} [{o1}, {e1}) and {b.key} [{o2}, {e2}) are alive together")


def program_lifetimes(program: Program) -> list[Lifetime]:
    """The arena buffers of a program's top-level steps (a placed buffer counted as the one it is
    inside), each with the first and last step touching it; keys are the buffers."""
    spans: dict[int, Lifetime] = {}
    for step, call in enumerate(program.calls):
        for b in step_buffers([call]):
            if b.kind != "arena":
                continue
            b = b.within or b
            lt = spans.setdefault(id(b), Lifetime(b, nbytes(b), step, step))
            lt.last = step
    return list(spans.values())


def check_program(program: Program) -> None:
    """Raise AssertionError if two arena buffers of `program` alive at once share bytes, a placed
    buffer leaves the one it is inside, or two placed in the same buffer overlap."""
    lifetimes = program_lifetimes(program)
    check_plan(lifetimes, ArenaPlan({lt.key: lt.key.offset for lt in lifetimes}, program.arena_bytes))
    inside: dict[int, list[ProgramBuffer]] = {}
    for b in step_buffers(program.calls):
        if b.kind == "arena" and b.within is not None:
            inside.setdefault(id(b.within), []).append(b)
    for slabs in inside.values():
        within = slabs[0].within
        assert within is not None and within.within is None, f"{slabs[0].name} is inside a placed buffer"
        spans = sorted({(b.offset, b.offset + nbytes(b), b.name) for b in slabs})
        for i, (o1, e1, a) in enumerate(spans):
            assert within.offset <= o1 and e1 <= within.offset + nbytes(within), f"{a} leaves {within.name}"
            for o2, e2, b in spans[i + 1 :]:  # disjoint, or one inside the other (a placed Concat inside a Concat)
                nested = (o1 <= o2 and e2 <= e1) or (o2 <= o1 and e1 <= e2)
                assert e1 <= o2 or e2 <= o1 or nested, f"{a} [{o1}, {e1}) and {b} [{o2}, {e2}) overlap in {within.name}"

