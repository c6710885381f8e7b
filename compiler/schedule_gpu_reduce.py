"""Row reductions on a GPU: one block per row, warp shuffles to combine (filled in below)."""

from __future__ import annotations

from aic.ir.loop import Stmt


def row_reduction(part: Stmt) -> tuple[Stmt, str] | None:
    return None
