"""int8 MLP: aic fp32, aic int8 and onnxruntime int8 (and fp32), interleaved in one process.

    python -m bench.int8 [--layers 4] [--width 1024] [--batch 1 32] [--threads 1] [--seconds 2] [--qdq]

The fp32 MLP (MatMul + bias + Relu per layer, random weights) is built with `onnx.helper`
and quantized by onnxruntime's `quantize_dynamic` (uint8 activations, int8 weights:
DynamicQuantizeLinear + MatMulInteger + Cast + Mul per layer), or with `--qdq` by
`quantize_static` in the QDQ format (int8 activations and weights, QuantizeLinear /
DequantizeLinear around every MatMul and Add; calibrated on 8 random batches). Engines take turns in a
rotating order; a sample is enough back-to-back calls for >= 2 ms; medians of the per-call
time. The int8 outputs are compared with onnxruntime's int8 outputs (max error relative to
the output's max) and with the fp32 outputs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

import aic


def mlp(layers: int, width: int, seed: int = 0) -> onnx.ModelProto:
    """`layers` x (MatMul width x width, bias, Relu) over a dynamic batch."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        b = (rng.standard_normal(width) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
                  helper.make_node("Relu", [f"a{i}"], [f"y{i}"] if i < layers - 1 else ["y"])]
        x = f"y{i}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", width])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class _RandomBatches(CalibrationDataReader):
    def __init__(self, width: int) -> None:
        rng = np.random.default_rng(2)
        self.batches = iter([{"x": rng.standard_normal((1, width)).astype(np.float32)} for _ in range(8)])

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def quantized(model: onnx.ModelProto, qdq: bool = False) -> onnx.ModelProto:
    """onnxruntime's `quantize_dynamic` of `model` (int8 weights, uint8 activations), or with `qdq`
    its `quantize_static` in the QDQ format (int8 weights and activations)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "f.onnx"), os.path.join(tmp, "q.onnx")
        onnx.save(model, src)
        if qdq:
            width = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
            quantize_static(src, dst, _RandomBatches(width), quant_format=QuantFormat.QDQ)
        else:
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        return onnx.load(dst)


def with_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for v in (*m.graph.input, *m.graph.output):
        v.type.tensor_type.shape.dim[0].dim_value = batch
    return m


def engines(fp32: onnx.ModelProto, int8: onnx.ModelProto, threads: int) -> dict[str, Callable[[dict], list]]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    out: dict[str, Callable[[dict], list]] = {}
    for name, model in (("fp32", fp32), ("int8", int8)):
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        mod = aic.compile(model, num_threads=threads)
        out[f"aic {name}"] = lambda feeds, m=mod: m.run(None, feeds)
        out[f"ort {name}"] = lambda feeds, s=sess: s.run(None, feeds)
    return out


def measure(batch: int, layers: int, width: int, threads: int, seconds: float, qdq: bool = False) -> dict[str, float]:
    fp32 = mlp(layers, width)
    int8 = quantized(fp32, qdq)
    fp32, int8 = with_batch(fp32, batch), with_batch(int8, batch)
    run = engines(fp32, int8, threads)
    feeds = {"x": np.random.default_rng(1).standard_normal((batch, width)).astype(np.float32)}
    outs = {name: fn(feeds)[0] for name, fn in run.items()}
    scale = float(np.abs(outs["ort int8"]).max())
    print(f"  aic int8 vs ort int8: max err {np.abs(outs['aic int8'] - outs['ort int8']).max() / scale:.2e} rel; "
          f"int8 vs fp32: {np.abs(outs['ort int8'] - outs['ort fp32']).max() / scale:.2e} rel")
    return interleaved(run, feeds, seconds)


def interleaved(run: dict[str, Callable[[dict], list]], feeds: dict, seconds: float,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median seconds per call of each engine, engines taking turns in a rotating order (`clock`:
    `time.thread_time` counts only this thread's CPU time, robust on a loaded machine)."""
    reps = {}
    for name, fn in run.items():
        t0 = time.perf_counter()
        fn(feeds)
        reps[name] = max(1, int(0.002 / max(time.perf_counter() - t0, 1e-7)))
    times: dict[str, list[float]] = {name: [] for name in run}
    names, end, turn = list(run), time.perf_counter() + seconds * len(run), 0
    while time.perf_counter() < end:
        for name in names[turn % len(names):] + names[: turn % len(names)]:
            time.sleep(0.001)
            t0 = clock()
            for _ in range(reps[name]):
                run[name](feeds)
            times[name].append((clock() - t0) / reps[name])
        turn += 1
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--qdq", action="store_true", help="quantize_static (QDQ) instead of quantize_dynamic")
    args = p.parse_args()
    for batch in args.batch:
        kind = "quantize_static QDQ" if args.qdq else "quantize_dynamic"
        print(f"MLP {args.layers}x{args.width} ({kind}), batch {batch}, {args.threads} thread(s)")
        r = measure(batch, args.layers, args.width, args.threads, args.seconds, args.qdq)
        macs = batch * args.layers * args.width * args.width
        for name, t in r.items():
            print(f"  {name:9s} {t * 1e3:8.3f} ms  {2 * macs / t / 1e9:7.1f} GOP/s  "
                  f"aic int8 / this {r['aic int8'] / t:6.2f}")


if __name__ == "__main__":
    main()
