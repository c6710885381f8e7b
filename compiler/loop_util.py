"""The loop-IR builders lowering uses (folding `binop`, `select`, `seq`), from `aic.ir.loop_tools`."""

from aic.ir.loop_tools import binop, select, seq

__all__ = ["binop", "select", "seq"]
