"""aic's intermediate representations: graph IR, the op table, loop IR."""

from .builder import GraphBuilder
from .dims import Dim, is_static
from .dtypes import DType
from .graph import Graph, Node, Value
from .interpreter import InterpreterError, run_graph
from .ops import OPS, Attr, OpDef, OpError, get_op
from .printer import print_graph
from .types import TensorType
from .verifier import VerifyError, verify

__all__ = [
    "OPS",
    "Attr",
    "DType",
    "Dim",
    "Graph",
    "GraphBuilder",
    "InterpreterError",
    "Node",
    "OpDef",
    "OpError",
    "TensorType",
    "Value",
    "VerifyError",
    "get_op",
    "is_static",
    "print_graph",
    "run_graph",
    "verify",
]
