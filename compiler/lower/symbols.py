"""Run-time sizes inside kernels: binding the symbol variables, and shape tensors of symbols.

A kernel that uses run-time sizes (compiler/lower/sizes.py) takes the model's "dims"
slot (int64, one entry per range symbol, written by the runtime before each run) as a
parameter and binds each symbol it uses once, at its top, clamped to the symbol's range
(the runtime has validated the value; the clamp lets the loop-IR verifier bound every
access from the range).

Shape arithmetic (Shape, Gather on a shape, Concat, Unsqueeze...) whose results are known
as expressions of the symbols needs no kernel: `fold_symbolic_values` removes those nodes,
and a reader computes the elements from the symbols (`symbol_tensor`).
"""

from __future__ import annotations

from aic.ir.graph import Graph, Value
from aic.ir.loop import INDEX, Cast, Const, Expr, Let, Load, Stmt, Var
from aic.ir.loop_tools import binop, exprs_of, map_stmt_exprs, select

from .core import ComputeTensor, LowerCtx, Tensor
from .sizes import Symbols, as_expr, current_symbols, shape_of


def bind_symbols(ctx: LowerCtx, body: Stmt) -> Stmt:
    """`body` with the symbol variables it uses bound from a "dims" parameter (their opt sizes
    noted in `ctx.typical_sizes`, for the schedule)."""
    symbols = current_symbols()
    if symbols is None:
        return body
    wanted = {id(v): name for name, v in symbols.vars.items()}
    used: set[str] = set()

    def look(e: Expr) -> Expr:
        used.update(wanted[id(x)] for x in exprs_of(e) if isinstance(x, Var) and id(x) in wanted)
        return e

    map_stmt_exprs(body, look)
    if not used:
        return body
    dims = ctx.param("dims", INDEX, len(symbols.order), None, "dims")
    for k, name in reversed(list(enumerate(symbols.order))):
        if name in used:
            r = symbols.ranges[name]
            ctx.typical_sizes[symbols.vars[name]] = r.opt
            value = binop("min", binop("max", Load(dims, Const(k, INDEX)), Const(r.lo, INDEX)), Const(r.hi, INDEX))
            body = Let(symbols.vars[name], value, body)
    return body


def symbol_tensor(v: Value) -> Tensor:
    """The small integer tensor `v`, whose elements are expressions of the symbols, computed in place."""
    symbols = current_symbols()
    assert symbols is not None and v.sym is not None
    elements = [Cast(v.type.dtype, as_expr(symbols.size(d))) if v.type.dtype != INDEX else as_expr(symbols.size(d))
                for d in v.sym]

    def at(index: list[Expr]) -> Expr:
        if not index:
            return elements[0]
        i = index[-1]
        if isinstance(i, Const):
            return elements[int(i.value)]
        out = elements[-1]
        for k in range(len(elements) - 2, -1, -1):
            out = select(binop("eq", i, Const(k, INDEX)), elements[k], out)
        return out

    return ComputeTensor(shape_of(v.type), v.type.dtype, at)


def fold_symbolic_values(graph: Graph, symbols: Symbols) -> None:
    """Drop the nodes whose outputs are all small tensors of known symbol expressions (and not
    graph outputs): their readers compute the elements from the symbols."""
    outputs = {id(v) for v in graph.outputs}

    def foldable(v: Value | None) -> bool:
        return (
            v is not None
            and v.sym is not None
            and v.type.dtype.is_int
            and id(v) not in outputs
            and all(symbols.covers(d) for d in v.sym)
        )

    kept = []
    for node in graph.nodes:
        if node.outputs and all(foldable(o) for o in node.outputs):
            for o in node.outputs:
                o.producer = None
            continue
        kept.append(node)
    graph.nodes = kept
