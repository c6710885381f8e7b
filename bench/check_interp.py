"""Run every exported benchmark model through aic's reference interpreter and onnxruntime.

    python -m bench.check_interp [--models gpt2] [--files bench/models/x.onnx] [--localise]

Prints, per ONNX file, the ops the frontend cannot convert (all at once), or the max relative
error max|aic - ORT| / max|ORT| per output. With --localise, a model whose outputs differ is
re-run node by node against onnxruntime (every intermediate made a graph output,
optimisations off) and the first ONNX node whose output differs is named.
"""

from __future__ import annotations

import argparse
import os
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnx.shape_inference
import onnxruntime as ort
from aic.frontend.onnx import load_model
from aic.frontend.onnx.converters import find_converter
from aic.ir.interpreter import run_graph, run_node

from bench.export_models import MODEL_DIR
from bench.models import MODELS, default_opset

TOLERANCE = 1e-4  # fp32 through ~100 layers: float32 reassociation stays well below this


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """max|got - want| / max|want| (absolute when `want` is all zeros); inf on shape mismatch."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return float("inf")
    if want.dtype.kind in "biu":
        return float(np.any(got != want))
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    diff = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
    return diff / scale if scale > 0 else diff


def missing_ops(model: onnx.ModelProto) -> Counter[str]:
    """ONNX op types of the model (top level) that the frontend has no converter for."""
    opset = default_opset(model)
    return Counter(n.op_type for n in model.graph.node if find_converter(n.op_type, opset) is None)


def ort_session(path: Path | bytes, optimise: bool = True) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    return ort.InferenceSession(str(path) if isinstance(path, Path) else path, options)


def interpreter_values(graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every value the interpreter computes, by name (ONNX names survive on converted outputs)."""
    values: dict[int, np.ndarray] = {id(v): feeds[v.name] for v in graph.inputs}
    named: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        inputs = [None if v is None else (v.const if v.const is not None else values[id(v)]) for v in node.inputs]
        for value, array in zip(node.outputs, run_node(node, inputs, values)):
            values[id(value)] = array
            named[value.name] = array
    return named


def localise(path: Path, feeds: dict[str, np.ndarray], tolerance: float) -> str:
    """Name the first ONNX node (in file order) whose output differs between aic and onnxruntime."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    typed = {v.name: v for v in model.graph.value_info}
    known_outputs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name in typed and name not in known_outputs:
                model.graph.output.append(typed[name])
    session = ort_session(model.SerializeToString(), optimise=False)
    names = [o.name for o in session.get_outputs()]
    want = dict(zip(names, session.run(names, feeds)))
    got = interpreter_values(load_model(path), feeds)
    for node in model.graph.node:
        for name in node.output:
            if name in want and name in got:
                err = relative_error(got[name], want[name])
                if err > tolerance:
                    return f"first divergence: {node.op_type} '{node.name}' output '{name}' rel err {err:.3g}"
    return "no single node diverges beyond tolerance (errors accumulate)"


def check(path: Path, feeds: dict[str, np.ndarray], tolerance: float, do_localise: bool) -> tuple[bool, str]:
    """Compare one file; returns (ok, one-line report)."""
    model = onnx.load(str(path))
    missing = missing_ops(model)
    if missing:
        listed = ", ".join(f"{op} ×{n}" for op, n in sorted(missing.items()))
        return False, f"unsupported ops (opset {default_opset(model)}): {listed}"
    start = time.perf_counter()
    try:
        graph = load_model(model)
        loaded = time.perf_counter()
        got = run_graph(graph, feeds)
    except Exception as err:  # report any frontend/interpreter failure and continue with the next model
        where = traceback.extract_tb(err.__traceback__)[-1]
        message = str(err).splitlines()[0][:400] if str(err) else ""
        return False, f"{type(err).__name__}: {message} (at {Path(where.filename).name}:{where.lineno})"
    ran = time.perf_counter()
    want = ort_session(path).run(None, feeds)
    errors = [relative_error(g, w) for g, w in zip(got, want)]
    ok = all(e <= tolerance for e in errors)
    text = f"max rel err {', '.join(f'{e:.2e}' for e in errors)}"
    text += f" (load {loaded - start:.1f} s, run {ran - loaded:.1f} s)"
    if not ok and do_localise:
        text += "; " + localise(path, feeds, tolerance)
    return ok, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--files", nargs="+", type=Path, help="check these files instead of bench/models/<model>_*")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    parser.add_argument("--localise", action="store_true", help="name the first diverging node of failing models")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    files = args.files or sorted(p for m in args.models for p in MODEL_DIR.glob(f"{m}_*.onnx"))
    if not files:
        raise SystemExit(f"no models in {MODEL_DIR}: run `python -m bench.export_models` first")
    failures = 0
    for path in files:
        name = next(m for m in MODELS if path.stem.startswith(m + "_"))
        feeds = MODELS[name].inputs()
        ok, text = check(path, feeds, args.tolerance, args.localise)
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {path.name}: {text}", flush=True)
    print(f"{len(files) - failures}/{len(files)} models match onnxruntime within {args.tolerance:g}")


if __name__ == "__main__":
    main()
