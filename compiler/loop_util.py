"""The loop-IR tools lowering and scheduling use, from `aic.ir.loop_tools` (where they live)."""

from aic.ir.loop_tools import (
    binop,
    coefficient,
    exprs_of,
    map_expr,
    select,
    seq,
    static_int,
    stmts_of,
    subst,
    subst_stmt,
)

__all__ = ["binop", "coefficient", "exprs_of", "map_expr", "select", "seq", "static_int", "stmts_of", "subst"]
__all__ += ["subst_stmt"]
