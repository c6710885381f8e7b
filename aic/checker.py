"""`aic check`: compile a model, run it in aic and onnxruntime (and aic's float64 reference
interpreter) on the same inputs, and compare every output against dtype-aware tolerances.

    result = aic.check("model.onnx")              # random inputs (int inputs kept in range)
    result.ok, result.outputs[0].vs_onnxruntime.max_abs
    aic.check("model.onnx", bisect=True).divergence   # the first node whose value differs

An output passes when aic agrees with onnxruntime or with the float64 reference within the
tolerance of its dtype (`TOLERANCES`): |aic - other| <= atol * max|other| + rtol * |other| (atol
alone when `other` is all zeros). Integer and bool outputs must match exactly. With `bisect`,
the intermediate values are compared too, and a diverging one fails the check even when the
outputs agree (a wrong value can fade before it reaches them). `reference_model` runs onnxruntime and the
reference on another model than the one aic compiles (the original of an edited model).

Bisection: both engines return every intermediate value they share as an extra output (the
values of aic's optimised graph that keep their ONNX names, marked as outputs after the graph
passes, so the passes' rewrites are what gets checked). They are compared in the ONNX model's
node order; the first one out of tolerance is reported with its aic node, op, input shapes and
the pass that created that node. Marking values as outputs keeps them in memory, so kernels
that fused them no longer do: a difference that only fused kernels show is reported as not found.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

ModelArg = str | os.PathLike | onnx.ModelProto

# dtype -> (rtol, atol): float32 about 1e-4 relative once a few hundred products are summed.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-9, 1e-9),
    "float32": (1e-4, 1e-4),
    "float16": (1e-2, 1e-2),
    "bfloat16": (3e-2, 3e-2),
}


@dataclass(frozen=True)
class ErrorStats:
    """How far one engine's output is from another's."""

    max_abs: float
    max_rel: float
    ok: bool


@dataclass
class OutputCheck:
    name: str
    dtype: str
    shape: list[int]
    vs_onnxruntime: ErrorStats | None
    vs_reference: ErrorStats | None

    @property
    def ok(self) -> bool:
        stats = [s for s in (self.vs_onnxruntime, self.vs_reference) if s is not None]
        return any(s.ok for s in stats)


@dataclass
class Divergence:
    """The first value (in the model's node order) whose aic result differs from onnxruntime's."""

    value: str
    node: str
    op: str
    input_shapes: list[str]
    produced_by: str  # the graph pass that created the node, or "the model"
    error: ErrorStats
    compared: int  # intermediate values compared

    def text(self) -> str:
        return (
            f"first divergence: value '{self.value}' of node '{self.node}' ({self.op}) with inputs "
            f"({', '.join(self.input_shapes)}), from {self.produced_by}: max abs {self.error.max_abs:.3g}, "
            f"max rel {self.error.max_rel:.3g} ({self.compared} intermediate values compared)"
        )


@dataclass
class CheckResult:
    model: str
    outputs: list[OutputCheck]
    inputs: dict[str, list[int]]
    compile_seconds: float
    notes: list[str] = field(default_factory=list)
    divergence: Divergence | None = None

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs) and self.divergence is None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        for entry, check in zip(out["outputs"], self.outputs):
            entry["ok"] = check.ok
        return out

    def text(self) -> str:
        lines = [f"aic check {self.model}: compiled in {self.compile_seconds:.2f}s"]
        lines += [f"  input {n}: {shape}" for n, shape in self.inputs.items()]
        for o in self.outputs:
            parts = [f"  {'ok  ' if o.ok else 'FAIL'} {o.name} {o.dtype}{o.shape}"]
            for label, s in (("onnxruntime", o.vs_onnxruntime), ("float64 reference", o.vs_reference)):
                if s is not None:
                    parts.append(f"vs {label}: max abs {s.max_abs:.3g} rel {s.max_rel:.3g}{'' if s.ok else ' (!)'}")
            lines.append("  ".join(parts))
        lines += [f"  note: {n}" for n in self.notes]
        if self.divergence is not None:
            lines.append("  " + self.divergence.text())
        if self.ok:
            lines.append("PASSED")
        elif all(o.ok for o in self.outputs):
            lines.append("FAILED: the outputs agree, but an intermediate value differs from onnxruntime's")
        else:
            lines.append("FAILED: aic disagrees with onnxruntime and the float64 reference")
        return "\n".join(lines)


def check(
    model: ModelArg,
    inputs: Mapping[str, np.ndarray] | None = None,
    opt_level: int = 2,
    target: str = "llvm",
    shapes: Mapping[str, Any] | None = None,
    *,
    bisect: bool = False,
    reference_model: ModelArg | None = None,
    seed: int = 0,
    tolerances: Mapping[str, tuple[float, float]] | None = None,
) -> CheckResult:
    """Compare aic with onnxruntime and the float64 reference on `inputs` (random where
    missing); with `bisect`, also find the first diverging node when an output differs."""
    import aic
    from aic.frontend.onnx import load_model

    proto = _proto(model)
    reference = _proto(reference_model) if reference_model is not None else proto
    tol = {**TOLERANCES, **(tolerances or {})}
    graph = load_model(proto)
    feeds = {**random_inputs(graph, shapes, seed), **(inputs or {})}
    start = time.perf_counter()
    module = aic.compile(proto, target, opt_level, shapes=shapes)
    compile_seconds = time.perf_counter() - start
    names = [v.name for v in graph.outputs]
    got = dict(zip(names, module.run(None, feeds)))
    notes: list[str] = []
    try:
        ort: dict[str, np.ndarray] | None = dict(zip(names, run_onnxruntime(reference, feeds)))
    except Exception as err:  # a model onnxruntime cannot run: compare with the reference only
        ort = None
        notes.append(f"onnxruntime could not run the model: {type(err).__name__}: {str(err)[:200]}")
    try:
        ref: dict[str, np.ndarray] | None = dict(zip(names, run_float64_reference(reference, feeds)))
    except Exception as err:  # an op the interpreter cannot run in float64: say so, compare with ORT only
        ref = None
        notes.append(f"no float64 reference: {type(err).__name__}: {str(err)[:200]}")
    outputs = []
    for name in names:
        a = got[name]
        vs_ort = compare(a, ort[name], tol) if ort is not None else None
        vs_ref = compare(a, ref[name], tol) if ref is not None else None
        outputs.append(OutputCheck(name, a.dtype.name, list(a.shape), vs_ort, vs_ref))
    result = CheckResult(
        str(model) if not isinstance(model, onnx.ModelProto) else proto.graph.name,
        outputs,
        {n: list(np.shape(v)) for n, v in feeds.items()},
        compile_seconds,
        notes,
    )
    if bisect and ort is not None:
        result.divergence = first_divergence(proto, reference, feeds, opt_level, target, shapes, tol)
        if result.divergence is None and not result.ok:
            notes.append("no intermediate value differs: the difference appears only in the fused final kernels")
    return result


def compare(actual: np.ndarray, expected: np.ndarray, tolerances: Mapping[str, tuple[float, float]]) -> ErrorStats:
    """Max abs/rel error of `actual` against `expected`, and whether it is within tolerance."""
    if actual.shape != expected.shape:
        return ErrorStats(float("inf"), float("inf"), False)
    if actual.size == 0:
        return ErrorStats(0.0, 0.0, True)
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    diff = np.abs(a - e)
    same_nan = np.isnan(a) & np.isnan(e)
    same_inf = np.isinf(a) & (a == e)
    diff = np.where(same_nan | same_inf, 0.0, diff)
    diff = np.where(np.isnan(diff), np.inf, diff)
    scale = np.abs(np.where(np.isfinite(e), e, 0.0))
    max_abs = float(diff.max())
    max_rel = float((diff / np.maximum(scale, np.finfo(np.float64).tiny)).max())
    rtol, atol = tolerances.get(str(np.dtype(actual.dtype).name), (0.0, 0.0))
    largest = float(scale.max())
    bound = atol * (largest if largest > 0 else 1.0) + rtol * scale
    return ErrorStats(max_abs, max_rel, bool(np.all(diff <= bound)))


def random_inputs(graph: Any, shapes: Mapping[str, Any] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for `graph`'s inputs: normal floats; ints in [0, 8), or below the size of the
    table they index when they feed a Gather (token ids below the vocabulary size); random bools."""
    from aic.compiler.shapes import bind_shapes

    rng = np.random.default_rng(seed)
    bound = bind_shapes(graph, shapes)
    limits = _index_limits(bound)
    feeds = {}
    for v in bound.inputs:
        shape = tuple(d if isinstance(d, int) else 1 for d in v.type.shape)
        dtype = v.type.dtype.numpy
        if v.type.dtype.is_float:
            feeds[v.name] = rng.standard_normal(shape).astype(dtype)
        elif v.type.dtype.name == "bool":
            feeds[v.name] = rng.random(shape) < 0.5
        else:
            feeds[v.name] = rng.integers(0, limits.get(v.name, 8), shape).astype(dtype)
    return feeds


def _index_limits(graph: Any) -> dict[str, int]:
    limits: dict[str, int] = {}
    for node in graph.walk():
        if node.op == "Gather" and len(node.inputs) > 1 and node.inputs[1] is not None:
            data, ids = node.inputs[0], node.inputs[1]
            axis = int(node.attrs.get("axis", 0)) % max(len(data.type.shape), 1)
            size = data.type.shape[axis] if data.type.shape else None
            if isinstance(size, int) and ids.producer is None and ids.const is None:
                limits[ids.name] = min(limits.get(ids.name, size), size)
    return limits


def run_onnxruntime(
    model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
) -> list[np.ndarray]:
    """Run `model` in onnxruntime (all graph optimisations) and return `outputs` (None: the graph's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    return session.run(list(outputs) if outputs is not None else None, {k: v for k, v in feeds.items() if k in wanted})


_FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16}


def run_float64_reference(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run `model` with every float tensor widened to float64 in aic's reference interpreter."""
    from aic.frontend.onnx import load_model
    from aic.ir import run_graph

    wide = to_float64(model)
    feeds64 = {k: v.astype(np.float64) if np.issubdtype(v.dtype, np.floating) or v.dtype.kind == "V" else v
               for k, v in feeds.items()}  # fmt: skip
    return run_graph(load_model(wide), feeds64)


def to_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` computing in float64: inputs, outputs, weights, constants and casts."""
    wide = copy.deepcopy(model)
    _widen_graph(wide.graph)
    return wide


def _widen_graph(graph: onnx.GraphProto) -> None:
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        if vi.type.tensor_type.elem_type in _FLOATS:
            vi.type.tensor_type.elem_type = TensorProto.DOUBLE
    for i, init in enumerate(graph.initializer):
        if init.data_type in _FLOATS:
            graph.initializer[i].CopyFrom(_widen_tensor(init))
    for node in graph.node:
        for attr in node.attribute:
            if attr.name in ("to", "dtype") and attr.type == onnx.AttributeProto.INT and attr.i in _FLOATS:
                attr.i = TensorProto.DOUBLE
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type in _FLOATS:
                attr.t.CopyFrom(_widen_tensor(attr.t))
            elif attr.type == onnx.AttributeProto.GRAPH:
                _widen_graph(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    _widen_graph(g)


def _widen_tensor(tensor: onnx.TensorProto) -> onnx.TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float64), tensor.name)


def _proto(model: ModelArg) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else onnx.load(os.fspath(model))


# --bisect ------------------------------------------------------------


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
    from aic.runtime.module import load_scratch

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
    module = load_scratch(compile_model(optimized, target, opt_level, disable_passes=list(PASSES)))
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
