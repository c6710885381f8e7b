"""Symbolic dims as text ("batch", "2*batch*seq", "seq+1"), evaluated without the compiler.

`eval_dim(text, leaf)` walks the text as a Python expression of ints, names, + - * // %
and parentheses, with each name replaced by `leaf(name)`: ints give the size at run time
(runtime/module.py); the compiler's run-time sizes give loop-IR expressions (compiler/lower/sizes.py).
"""

from __future__ import annotations

import ast
import functools
import operator
from collections.abc import Callable
from typing import Any

_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}  # fmt: skip


class DimError(ValueError):
    """A dim text that is not an expression of the known symbols."""


def eval_dim(text: str, leaf: Callable[[str], Any], names: set[str] | frozenset[str] | dict) -> Any:
    """The dim `text` with every symbol (one of `names`) replaced by `leaf(symbol)`."""
    if text in names:
        return leaf(text)

    def refuse() -> DimError:
        return DimError(f"dim '{text}' is not an expression of the symbols {sorted(names)}")

    def walk(node: ast.AST) -> Any:
        match node:
            case ast.Constant(value=int() as v) if not isinstance(v, bool):
                return v
            case ast.Name(id=name) if name in names:
                return leaf(name)
            case ast.BinOp(left=a, op=op, right=b) if type(op) in _OPS:
                return _OPS[type(op)](walk(a), walk(b))
        raise refuse()

    tree = _parse(text)
    if tree is None:
        raise refuse()
    return walk(tree)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> ast.AST | None:
    """The expression tree of a dim text (parsed once: `Module.run` evaluates output dims every run)."""
    try:
        return ast.parse(text, mode="eval").body
    except SyntaxError:
        return None
