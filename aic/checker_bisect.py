"""`aic check --bisect`: the first graph node whose value differs between aic and onnxruntime.

Both engines return every intermediate value they share as an extra output: the values of
aic's optimised graph that keep their ONNX names, marked as outputs after the graph passes
(so the passes' rewrites are what gets checked), and the same names marked as outputs of
the ONNX model. They are compared in the ONNX model's node order; the first one out of
tolerance is reported with its aic node, op, input shapes, and the pass that created that
node. Marking values as outputs keeps them in memory, so kernels that fused them no longer
do: a difference that only fused kernels show is reported as not found.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx

from .checker import Divergence, compare, run_onnxruntime


def first_divergence(
    model: onnx.ModelProto,
    reference: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    opt_level: int,
    target: str,
    shapes: Mapping[str, Any] | None,
    tolerances: Mapping[str, tuple[float, float]],
) -> Divergence | None:
    """The first diverging value, or None when every shared intermediate agrees."""
    from aic.compiler.passes import PASSES, optimize
    from aic.compiler.pipeline import compile_model
    from aic.compiler.shapes import bind_shapes
    from aic.frontend.onnx import load_model
    from aic.runtime.module import load

    graph = bind_shapes(load_model(model), shapes)
    original = {(n.name, n.op) for n in graph.nodes}
    optimized, report = optimize(graph, opt_level)
    produced = {id(o): node for node in optimized.nodes for o in node.outputs}
    by_name = {o.name: o for node in optimized.nodes for o in node.outputs}
    outputs = {v.name for v in optimized.outputs}
    order = [name for node in reference.graph.node if node.op_type != "Constant" for name in node.output]
    shared = [name for name in order if name in by_name and name not in outputs]
    if not shared:
        return None
    optimized.outputs = [*optimized.outputs, *(by_name[n] for n in shared)]
    module = load(compile_model(optimized, target, opt_level, disable_passes=list(PASSES)))
    first = len(optimized.outputs) - len(shared)
    ours = module.run(None, feeds)[first:]
    marked = onnx.ModelProto()
    marked.CopyFrom(reference)
    marked.graph.output.extend(onnx.ValueInfoProto(name=n) for n in shared)
    theirs = run_onnxruntime(marked, feeds, shared)
    for name, a, b in zip(shared, ours, theirs):
        error = compare(a, np.asarray(b), tolerances)
        if error.ok:
            continue
        node = produced[id(by_name[name])]
        return Divergence(
            value=name,
            node=node.name,
            op=node.op,
            input_shapes=[str(v.type) if v is not None else "-" for v in node.inputs],
            produced_by=_producing_pass(node, original, report.records),
            error=error,
            compared=len(shared),
        )
    return None


def _producing_pass(node: Any, original: set[tuple[str, str]], records: list[Any]) -> str:
    """'the model' for a node the passes kept, else the first pass run that added an op of its kind."""
    if (node.name, node.op) in original:
        return "the model (kept by the passes)"
    for record in records:
        if record.ops_delta.get(node.op, 0) > 0:
            return f"pass {record.name}"
    return "a graph pass"
