"""The op table. Importing this package registers every op."""

from . import elementwise  # noqa: F401  (registers ops)
from .registry import OPS, REQUIRED, Attr, InferContext, OpDef, OpError, get_op, infer_node, register

__all__ = ["OPS", "REQUIRED", "Attr", "InferContext", "OpDef", "OpError", "get_op", "infer_node", "register"]
