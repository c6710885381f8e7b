"""int8 models A/B: aic int8 now, aic int8 with the quantizers as primitives (before), onnxruntime int8 and aic
fp32, interleaved in one process, at each thread count.

    python -m bench.int8_ab [--cases mlp32 encoder ...] [--threads 1 2] [--seconds 2]

Cases: the MLP 4 x 1024 of bench.int8 after `quantize_dynamic` at batch 8, 32 and 64 (mlp8, mlp32, mlp64) and
after `quantize_static` QDQ at batch 32 (mlp32-qdq); bench.int8_cnn's ResNet-18 per tensor and per channel and
MobileNetV2 per channel (resnet18-tensor, resnet18-channel, mobilenet_v2); a BERT-like encoder not tuned for
(2 layers, hidden 256, 4 heads, FFN 1024, sequence 128, erf GELU, after `quantize_dynamic`: encoder).
"before" splits every DynamicQuantizeLinear into the primitives aic lowered it to until it became one op
(ReduceMin, ReduceMax, scalar ops, Div, Round, Add, Clip, Cast; compiler/passes/split_dynamic_quantize.py):
only models with dynamic quantizers have it.
One thread: medians of this thread's CPU time (robust on a busy host); two threads: wall-clock medians.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
from aic.compiler.passes.split_dynamic_quantize import split_dynamic_quantize
from aic.frontend.load import read_model
from aic.ir import Graph
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

import aic

from . import int8, int8_cnn
from .int8 import interleaved

Case = tuple[onnx.ModelProto, onnx.ModelProto, dict[str, np.ndarray]]  # fp32, int8, feeds


def primitive_quantizers(model: onnx.ModelProto) -> Graph:
    """`model` read by aic with every DynamicQuantizeLinear split into primitives (the GPU targets' pass)."""
    return split_dynamic_quantize(read_model(model))


class _Builder:
    """Nodes and random initializers of a graph built by name."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def weight(self, name: str, *shape: int) -> str:
        scale = 1 / np.sqrt(shape[0]) if len(shape) == 2 else 0.1
        self.inits.append(numpy_helper.from_array((self.rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, kind: str, ins: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(kind, ins, [name], **attrs))
        return name

    def linear(self, a: str, n_in: int, n_out: int, name: str) -> str:
        m = self.op("MatMul", [a, self.weight(name + "_w", n_in, n_out)], name + "_m")
        return self.op("Add", [m, self.weight(name + "_b", n_out)], name)


def _encoder_layer(g: _Builder, x: str, p: str, hidden: int, heads: int, ffn: int, seq: int, out: str) -> str:
    d = hidden // heads
    heads_shape = g.const(p + "heads", np.array([seq, heads, d], np.int64))

    def split(name: str, perm: list[int]) -> str:
        r = g.op("Reshape", [g.linear(x, hidden, hidden, p + name), heads_shape], p + name + "_r")
        return g.op("Transpose", [r], p + name + "_t", perm=perm)

    q, k, v = split("q", [1, 0, 2]), split("k", [1, 2, 0]), split("v", [1, 0, 2])
    scores = g.op("Mul", [g.op("MatMul", [q, k], p + "qk"), g.const(p + "scale", np.float32(1 / np.sqrt(d)))], p + "s")
    ctx = g.op("MatMul", [g.op("Softmax", [scores], p + "p", axis=-1), v], p + "ctx")
    ctx = g.op("Reshape", [g.op("Transpose", [ctx], p + "ctx_t", perm=[1, 0, 2]),
                           g.const(p + "merged", np.array([seq, hidden], np.int64))], p + "ctx_m")
    h = g.op("Add", [x, g.linear(ctx, hidden, hidden, p + "o")], p + "res1")
    h = g.op("LayerNormalization", [h, g.weight(p + "g1", hidden), g.weight(p + "b1", hidden)], p + "ln1", axis=-1)
    u = g.linear(h, hidden, ffn, p + "up")
    erf = g.op("Erf", [g.op("Mul", [u, g.const(p + "rs2", np.float32(1 / np.sqrt(2)))], p + "us")], p + "erf")
    gelu = g.op("Mul", [g.op("Mul", [u, g.op("Add", [erf, g.const(p + "one", np.float32(1))], p + "e1")], p + "ue"),
                        g.const(p + "half", np.float32(0.5))], p + "gelu")
    h2 = g.op("Add", [h, g.linear(gelu, ffn, hidden, p + "down")], p + "res2")
    return g.op("LayerNormalization", [h2, g.weight(p + "g2", hidden), g.weight(p + "b2", hidden)], out, axis=-1)


def encoder(layers: int = 2, hidden: int = 256, heads: int = 4, ffn: int = 1024, seq: int = 128,
            seed: int = 0) -> onnx.ModelProto:
    """A BERT-like post-norm encoder over [seq, hidden] (MatMul, Add, Softmax, LayerNormalization, erf GELU)."""
    g, x = _Builder(seed), "x"
    for i in range(layers):
        x = _encoder_layer(g, x, f"l{i}_", hidden, heads, ffn, seq, "y" if i == layers - 1 else f"l{i}_out")
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [seq, hidden]) for n in ("x", "y")]
    graph = helper.make_graph(g.nodes, "encoder", io[:1], io[1:], g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def dynamic_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "f.onnx"), os.path.join(tmp, "q.onnx")
        onnx.save(model, src)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        return onnx.load(dst)


def _mlp(batch: int, qdq: bool = False) -> Case:
    fp32 = int8.mlp(4, 1024)
    q = int8.quantized(fp32, qdq)
    feeds = {"x": np.random.default_rng(1).standard_normal((batch, 1024)).astype(np.float32)}
    return int8.with_batch(fp32, batch), int8.with_batch(q, batch), feeds


def _cnn(name: str, per_channel: bool) -> Case:
    fp32, _ = int8_cnn.MODELS[name](224)
    feeds = {"x": np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    return fp32, int8_cnn.quantized(fp32, 224, per_channel), feeds


def _encoder() -> Case:
    fp32 = encoder()
    return fp32, dynamic_int8(fp32), {"x": np.random.default_rng(1).standard_normal((128, 256)).astype(np.float32)}


CASES: dict[str, Callable[[], Case]] = {
    "mlp8": lambda: _mlp(8), "mlp32": lambda: _mlp(32), "mlp64": lambda: _mlp(64),
    "mlp32-qdq": lambda: _mlp(32, qdq=True), "encoder": _encoder,
    "resnet18-tensor": lambda: _cnn("resnet18", False), "resnet18-channel": lambda: _cnn("resnet18", True),
    "mobilenet_v2": lambda: _cnn("mobilenet_v2", True),
}


def run_case(name: str, threads: list[int], seconds: float) -> None:
    fp32, q, feeds = CASES[name]()
    before = primitive_quantizers(q) if any(n.op_type == "DynamicQuantizeLinear" for n in q.graph.node) else None
    for t in threads:
        so = ort.SessionOptions()
        so.intra_op_num_threads = t
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(q.SerializeToString(), so, providers=["CPUExecutionProvider"])
        run = {"aic int8": aic.compile(q, num_threads=t).run}
        if before is not None:
            run["before"] = aic.compile(before, num_threads=t).run
        run["ort int8"] = sess.run
        run["aic fp32"] = aic.compile(fp32, num_threads=t).run
        outs = {k: fn(None, feeds)[0] for k, fn in run.items()}
        scale = float(np.abs(outs["ort int8"]).max())
        errors = ", ".join(f"{k} {np.abs(outs[k] - outs['ort int8']).max() / scale:.1e}"
                           for k in outs if k != "ort int8")
        r = interleaved({k: (lambda f, fn=fn: fn(None, f)) for k, fn in run.items()}, feeds, seconds,
                        time.thread_time if t == 1 else time.perf_counter)
        ratios = "  ".join(f"/{k} {r[k] / r['aic int8']:.2f}x" for k in r if k != "aic int8")
        times = "  ".join(f"{k} {v * 1e3:.3f}" for k, v in r.items())
        print(f"{name:17s} {t}T  ms: {times}  | speed-up of aic int8 over {ratios}  | max err vs ort int8: {errors}",
              flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args()
    for name in args.cases:
        run_case(name, args.threads, args.seconds)


if __name__ == "__main__":
    main()
