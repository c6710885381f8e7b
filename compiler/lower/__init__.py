"""Lowering graph ops to loop IR: one module per op family, one `Lowering` per op in `LOWERINGS`.

Importing this package registers every lowering.
"""

from . import (  # noqa: F401  (register lowerings)
    attention,
    contraction,
    conv,
    conv_blocked,
    dynamic_ops,
    elementwise,
    generate,
    index,
    misc,
    movement,
    norm,
    pool,
    quant_conv,
    quant_dynamic,
    quant_matmul,
    recurrent,
    reduce,
    resize,
    vision,
)
from .core import LoweringError
from .table import LOWERINGS, Lowering, lowering_of

__all__ = ["LOWERINGS", "Lowering", "LoweringError", "lowering_of"]
