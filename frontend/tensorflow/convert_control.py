"""Converters of tf.function control flow: StatelessIf/If onto aic's If, and
StatelessWhile/While onto aic's Loop.

Branch and loop functions come from the graph's function library. An If whose
condition is known at compile time becomes its taken branch. If branches take
no inputs in aic: the function's arguments are bound to the enclosing values,
which the branch graph reads from outside. A while loop becomes
Loop(no trip count, cond(initial)) whose body runs the TensorFlow body, then
the condition on its results.
"""

from __future__ import annotations

import numpy as np
from aic.ir import DType, Graph, GraphBuilder, TensorType, Value

from .context import TFContext, converter


def _flag(ctx: TFContext, v: Value, builder: GraphBuilder | None = None) -> Value:
    """A condition as one bool element (TensorFlow reads any non-zero scalar as true)."""
    target = builder or ctx.builder
    if v.type.dtype != DType.bool:
        v = target.op("Cast", v, name=ctx.name, to=DType.bool.onnx)
    if v.type.rank:
        v = target.op("Reshape", v, target.const(np.zeros(0, np.int64), f"{ctx.name}/scalar"), name=ctx.name)
    return v


def _graph_of(ctx: TFContext, builder: GraphBuilder, results: list[Value], inner: set[int]) -> Graph:
    """A subgraph returning `results`; values from outside pass through an Identity."""
    outputs = [v if id(v) in inner else builder.op("Identity", v, name=ctx.name) for v in results]
    return builder.build(outputs)


def _produced(builder: GraphBuilder) -> set[int]:
    return {id(v) for n in builder.nodes for v in n.outputs} | {id(v) for v in builder.inputs}


@converter("StatelessIf", "If")
def convert_if(ctx: TFContext) -> list[Value]:
    cond, args = ctx.inputs[0], ctx.inputs[1:]
    then_name, else_name = ctx.attr("then_branch"), ctx.attr("else_branch")
    known = cond.const if cond.const is not None else None
    if known is not None and known.size == 1:
        return ctx.call(then_name if bool(known.reshape(-1)[0]) else else_name, args)
    branches = []
    for fn, hint in ((then_name, "then"), (else_name, "else")):
        builder = ctx.sub_builder(hint)
        results = ctx.call(fn, args, builder)
        branches.append(_graph_of(ctx, builder, results, _produced(builder)))
    count = len(branches[0].outputs)
    if count != len(branches[1].outputs):
        raise ctx.error("the branches return different numbers of values")
    attrs = {"then_branch": branches[0], "else_branch": branches[1]}
    return ctx.builder.node("If", [_flag(ctx, cond)], attrs, name=ctx.name, num_outputs=count)


@converter("StatelessWhile", "While")
def convert_while(ctx: TFContext) -> list[Value]:
    cond_name, body_name = ctx.attr("cond"), ctx.attr("body")
    initial = ctx.inputs
    first = _flag(ctx, ctx.call(cond_name, initial)[0])
    types = [v.type for v in initial]
    body = _loop_body(ctx, cond_name, body_name, types)
    generalised = [_join(ctx, t, o.type, i) for i, (t, o) in enumerate(zip(types, body.outputs[1:]))]
    if generalised != types:  # a loop-carried shape changes across iterations
        body = _loop_body(ctx, cond_name, body_name, generalised)
    inputs: list[Value | None] = [None, first, *initial]
    return ctx.builder.node("Loop", inputs, {"body": body}, name=ctx.name, num_outputs=len(initial))


def _loop_body(ctx: TFContext, cond_name: str, body_name: str, types: list[TensorType]) -> Graph:
    builder = ctx.sub_builder("body")
    builder.input(builder.unique(f"{ctx.name}/iteration"), TensorType(DType.int64, ()))
    builder.input(builder.unique(f"{ctx.name}/condition"), TensorType(DType.bool, ()))
    carried = [builder.input(builder.unique(f"{ctx.name}/carried{i}"), t) for i, t in enumerate(types)]
    results = ctx.call(body_name, carried, builder)
    if len(results) != len(carried):
        raise ctx.error(f"the body returns {len(results)} values for {len(carried)} loop variables")
    again = _flag(ctx, ctx.call(cond_name, results, builder)[0], builder)
    return _graph_of(ctx, builder, [again, *results], _produced(builder) - {id(v) for v in carried})


def _join(ctx: TFContext, t: TensorType, out: TensorType, index: int) -> TensorType:
    if t.dtype != out.dtype or t.rank != out.rank:
        raise ctx.error(f"loop variable {index} changes type from {t} to {out}")
    dims = [d if d == o else f"{ctx.name}_v{index}_d{i}" for i, (d, o) in enumerate(zip(t.shape, out.shape))]
    return t.with_shape(dims)
