"""The op table. Importing this package registers every op."""

from . import (  # noqa: F401  (registers ops)
    activation,
    attention,
    blocked,
    cast,
    control,
    conv,
    detection,
    einsum,
    elementwise,
    generate,
    index,
    linalg,
    movement,
    norm,
    pool,
    quant,
    recurrent,
    reduce,
    resize,
    scan_ops,
    shape,
    slicing,
    softmax,
    unary,
    vision,
)
from .registry import OPS, REQUIRED, Attr, InferContext, OpDef, OpError, get_op, infer_node, register

__all__ = ["OPS", "REQUIRED", "Attr", "InferContext", "OpDef", "OpError", "get_op", "infer_node", "register"]
