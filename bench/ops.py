"""Single ops and small blocks: aic against onnxruntime (and OpenVINO when installed), interleaved.

    python -m bench.ops [-k convT dw5] [--threads 1] [--seconds 2]

Each case is a one- or few-node ONNX model built with `onnx.helper` (fp32, batch 1, random
weights). In one process the engines take turns in a rotating order, a short sleep before
each sample; a sample is `reps` back-to-back calls (enough for >= 2 ms), medians of the
per-call time. Outputs are checked against onnxruntime (max error relative to the output's
max). GFLOP/s count 2 x multiply-adds of the useful work.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import aic

rng = np.random.default_rng(0)


@dataclass
class Case:
    name: str
    model: onnx.ModelProto
    feeds: dict[str, np.ndarray]
    flops: float


def _model(nodes, inputs, output_shape, inits) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "case",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape)) for n, a in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _w(*shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


def conv_transpose(cin: int, cout: int, size: int, k: int, s: int, pad: int = 0, out_pad: int = 0) -> Case:
    x = rng.standard_normal((1, cin, size, size)).astype(np.float32)
    attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [pad] * 4, "output_padding": [out_pad] * 2}
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)
    flops = 2.0 * cin * cout * k * k * size * size
    name = f"convT{k}_s{s}_p{pad}_{cin}_{cout}_{size}"
    return Case(name, _model([node], {"x": x}, None, {"w": _w(cin, cout, k, k), "b": _w(cout)}), {"x": x}, flops)


def depthwise(ch: int, size: int, k: int, s: int, act: str | None = None) -> Case:
    x = rng.standard_normal((1, ch, size, size)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if act else "y"], group=ch, kernel_shape=[k, k],
                              strides=[s, s], pads=[k // 2] * 4)]
    if act == "silu":
        nodes += [helper.make_node("Sigmoid", ["c"], ["g"]), helper.make_node("Mul", ["c", "g"], ["y"])]
    elif act == "relu":
        nodes += [helper.make_node("Relu", ["c"], ["y"])]
    out = -(-size // s)
    flops = 2.0 * ch * k * k * out * out
    name = f"dw{k}_s{s}_{ch}_{size}" + (f"_{act}" if act else "")
    return Case(name, _model(nodes, {"x": x}, None, {"w": _w(ch, 1, k, k), "b": _w(ch)}), {"x": x}, flops)


def conv(cin: int, cout: int, size: int, k: int, s: int = 1, act: str | None = None) -> Case:
    """A dense Conv (+ LeakyReLU / SiLU / ReLU), padding k // 2."""
    x = rng.standard_normal((1, cin, size, size)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if act else "y"], kernel_shape=[k, k], strides=[s, s],
                              pads=[k // 2] * 4)]
    if act == "leaky":
        nodes += [helper.make_node("LeakyRelu", ["c"], ["y"], alpha=0.1)]
    elif act == "silu":
        nodes += [helper.make_node("Sigmoid", ["c"], ["g"]), helper.make_node("Mul", ["c", "g"], ["y"])]
    elif act == "relu":
        nodes += [helper.make_node("Relu", ["c"], ["y"])]
    out = -(-size // s)
    flops = 2.0 * cin * cout * k * k * out * out
    name = f"conv{k}_s{s}_{cin}_{cout}_{size}" + (f"_{act}" if act else "")
    return Case(name, _model(nodes, {"x": x}, None, {"w": _w(cout, cin, k, k), "b": _w(cout)}), {"x": x}, flops)


def resize(ch: int, size: int, scale: int, mode: str) -> Case:
    """Resize of the spatial axes by an integer factor (half_pixel; nearest rounds down, as torch's upsample)."""
    x = rng.standard_normal((1, ch, size, size)).astype(np.float32)
    attrs = {"mode": mode, **({"nearest_mode": "floor", "coordinate_transformation_mode": "asymmetric"}
                              if mode == "nearest" else {})}
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], **attrs)
    scales = np.array([1, 1, scale, scale], np.float32)
    return Case(f"resize_{mode}_x{scale}_{ch}_{size}", _model([node], {"x": x}, None, {"s": scales}), {"x": x}, 0.0)


def max_pool(ch: int, size: int, k: int, s: int) -> Case:
    x = rng.standard_normal((1, ch, size, size)).astype(np.float32)
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4)
    return Case(f"maxpool{k}_s{s}_{ch}_{size}", _model([node], {"x": x}, None, {}), {"x": x}, 0.0)


def silu(ch: int, size: int) -> Case:
    x = rng.standard_normal((1, ch, size, size)).astype(np.float32)
    nodes = [helper.make_node("Sigmoid", ["x"], ["g"]), helper.make_node("Mul", ["x", "g"], ["y"])]
    return Case(f"silu_{ch}_{size}", _model(nodes, {"x": x}, None, {}), {"x": x}, 0.0)


def lstm_tagger(steps: int = 32, emb: int = 128, hidden: int = 256, tags: int = 20) -> Case:
    """Two bidirectional LSTM layers as PyTorch exports them (weights as Concat(forward, backward)), then a
    linear layer per step."""
    x = rng.standard_normal((steps, 1, emb)).astype(np.float32)
    nodes, inits, src, width = [], {}, "x", emb
    for layer in range(2):
        parts = {}
        for kind, cols in (("W", width), ("R", hidden), ("B", None)):
            names = []
            for d in ("f", "b"):
                name = f"{kind}{layer}{d}"
                inits[name] = _w(1, 8 * hidden) if cols is None else _w(1, 4 * hidden, cols)
                names.append(name)
            parts[kind] = f"{kind}{layer}"
            nodes.append(helper.make_node("Concat", names, [parts[kind]], axis=0))
        nodes.append(helper.make_node("LSTM", [src, parts["W"], parts["R"], parts["B"]], [f"y{layer}"],
                                      hidden_size=hidden, direction="bidirectional"))
        inits[f"perm{layer}"] = np.array([steps, 1, 2 * hidden], np.int64)
        nodes.append(helper.make_node("Transpose", [f"y{layer}"], [f"t{layer}"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Reshape", [f"t{layer}", f"perm{layer}"], [f"h{layer}"]))
        src, width = f"h{layer}", 2 * hidden
    inits["wo"] = _w(2 * hidden, tags)
    nodes.append(helper.make_node("MatMul", [src, "wo"], ["y"]))
    flops = 2.0 * steps * (2 * sum(4 * hidden * (i + hidden) for i in (emb, 2 * hidden)) + 2 * hidden * tags)
    return Case(f"lstm_tagger_T{steps}_H{hidden}", _model(nodes, {"x": x}, None, inits), {"x": x}, flops)


CASES: list[Callable[[], Case]] = [
    lstm_tagger,
    lambda: conv_transpose(256, 128, 16, 2, 2),
    lambda: conv_transpose(128, 64, 32, 2, 2),
    lambda: conv_transpose(128, 64, 32, 3, 2, 1, 1),
    lambda: conv_transpose(64, 32, 32, 4, 2, 1),
    lambda: depthwise(768, 7, 7, 1),
    lambda: depthwise(384, 14, 7, 1),
    lambda: depthwise(1152, 7, 5, 1, "silu"),
    lambda: depthwise(240, 28, 5, 1, "silu"),
    lambda: depthwise(144, 56, 3, 2, "silu"),
    lambda: depthwise(96, 112, 3, 1, "relu"),
    lambda: depthwise(240, 28, 5, 2, "silu"),
    lambda: conv(256, 256, 10, 3, 1, "leaky"),
    lambda: conv(512, 256, 10, 1, 1, "leaky"),
    lambda: conv(256, 128, 20, 3, 1, "leaky"),
    lambda: conv(3, 16, 320, 3, 2, "leaky"),
    lambda: conv(960, 320, 7, 1),
    lambda: conv(576, 96, 14, 1),
    lambda: conv(96, 576, 14, 1),
    lambda: conv(160, 960, 7, 1),
    lambda: conv(1024, 256, 14, 1, 1, "relu"),
    lambda: conv(256, 1024, 14, 1, 1, "relu"),
    lambda: conv(2048, 512, 7, 1, 1, "relu"),
    lambda: conv(512, 2048, 7, 1, 1, "relu"),
    lambda: conv(512, 512, 7, 3, 1, "relu"),
    lambda: resize(64, 64, 2, "linear"),
    lambda: resize(128, 32, 2, "linear"),
    lambda: resize(128, 40, 2, "nearest"),
    lambda: resize(256, 20, 2, "nearest"),
    lambda: max_pool(128, 10, 5, 1),
    lambda: max_pool(64, 40, 5, 1),
    lambda: max_pool(64, 112, 3, 2),
    lambda: silu(144, 56),
    lambda: silu(240, 28),
]


def _engines(case: Case, threads: int, openvino: bool = True) -> dict[str, Callable[[], object]]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(case.model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    mod = aic.compile(case.model, num_threads=threads)
    engines: dict[str, Callable[[], object]] = {
        "aic": lambda: mod.run(None, case.feeds),
        "ort": lambda: sess.run(None, case.feeds),
    }
    try:
        if not openvino:
            return engines
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(case.model.SerializeToString(), b""), "CPU", {
            "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
            "INFERENCE_NUM_THREADS": str(threads)})
        request = compiled.create_infer_request()
        engines["ov"] = lambda: request.infer(case.feeds)
    except ImportError:
        pass
    return engines


def measure(case: Case, threads: int, seconds: float, openvino: bool = True) -> dict[str, float]:
    engines = _engines(case, threads, openvino)
    ref = engines["ort"]()[0]
    got = engines["aic"]()[0]
    err = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))
    for fn in engines.values():
        for _ in range(3):
            fn()
    t0 = time.perf_counter()
    engines["ort"]()
    once = time.perf_counter() - t0
    reps = max(1, int(0.002 / max(once, 1e-6)))
    times: dict[str, list[float]] = {k: [] for k in engines}
    names = list(engines)
    start, rounds = time.perf_counter(), 0
    while rounds < 10 or (time.perf_counter() - start < seconds and rounds < 200):
        order = names[rounds % len(names):] + names[:rounds % len(names)]
        for k in order:
            time.sleep(0.01)
            t0 = time.perf_counter()
            for _ in range(reps):
                engines[k]()
            times[k].append((time.perf_counter() - t0) / reps)
        rounds += 1
    out = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    out["err"] = err
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-k", nargs="*", default=[], help="run cases whose name contains one of these")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--no-openvino", action="store_true", help="time aic and onnxruntime only")
    args = p.parse_args()
    print("| case | aic ms | ORT ms | OV ms | aic/best | aic GFLOP/s | max rel err |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for make in CASES:
        case = make()
        if args.k and not any(k in case.name for k in args.k):
            continue
        r = measure(case, args.threads, args.seconds, not args.no_openvino)
        best = min(v for k, v in r.items() if k not in ("aic", "err"))
        gf = f"{case.flops / r['aic'] / 1e6:.1f}" if case.flops else "-"
        ov = f"{r['ov']:.3f}" if "ov" in r else "-"
        print(f"| {case.name} | {r['aic']:.3f} | {r['ort']:.3f} | {ov} | {r['aic'] / best:.2f} | {gf} | "
              f"{r['err']:.1e} |", flush=True)


if __name__ == "__main__":
    main()
