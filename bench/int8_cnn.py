"""int8 CNN: aic fp32, aic int8 and onnxruntime int8 (and fp32) on a ResNet-18, interleaved in one process.

    python -m bench.int8_cnn [--size 224] [--threads 1] [--seconds 3] [--per-tensor] [--wall]

A ResNet-18 (7x7 s2 stem, max pool, 4 stages of 2 basic blocks, 64..512 channels, 1x1 s2 shortcuts,
global pool, 1000-way Gemm; batch norms as if folded: Conv with bias) built with `onnx.helper` from
random weights, quantized by onnxruntime's `quantize_static` in the QDQ format (int8 activations and
weights, per output channel unless `--per-tensor`; calibrated on 4 random images). Engines take turns in
a rotating order; medians of the per-call CPU time of this thread (`--wall`: wall-clock time). The int8
outputs are compared (max error in output quantisation steps) with onnxruntime's int8 run and with the
QDQ model run as written (onnxruntime with graph optimizations off: dequantize, float Conv, quantize).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

from .int8 import engines, interleaved

STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))  # (channels, stride of the first block)


def resnet18(size: int, seed: int = 0) -> tuple[onnx.ModelProto, int]:
    """The model and its multiply-adds per image."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    macs = 0

    def conv(x: str, cin: int, cout: int, k: int, stride: int, hw: int, relu: bool) -> tuple[str, int]:
        nonlocal macs
        name = f"conv{len(inits) // 2}"
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2 / (cin * k * k))).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"{name}_w"),
                      numpy_helper.from_array((rng.standard_normal(cout) * 0.1).astype(np.float32), f"{name}_b")])
        out = -(-hw // stride)
        macs += cin * cout * k * k * out * out
        nodes.append(helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [f"{name}_c" if relu else name],
                                      pads=[k // 2] * 4, strides=[stride] * 2))
        if relu:
            nodes.append(helper.make_node("Relu", [f"{name}_c"], [name]))
        return name, out

    x, hw = conv("x", 3, 64, 7, 2, size, True)
    nodes.append(helper.make_node("MaxPool", [x], ["pool"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x, hw, cin = "pool", -(-hw // 2), 64
    for channels, stride in STAGES:
        for block in range(2):
            s = stride if block == 0 else 1
            h, out = conv(x, cin, channels, 3, s, hw, True)
            h, _ = conv(h, channels, channels, 3, 1, out, False)
            shortcut = conv(x, cin, channels, 1, s, hw, False)[0] if s > 1 or cin != channels else x
            nodes += [helper.make_node("Add", [h, shortcut], [f"{h}_sum"]),
                      helper.make_node("Relu", [f"{h}_sum"], [f"{h}_out"])]
            x, hw, cin = f"{h}_out", out, channels
    fc = (rng.standard_normal((1000, 512)) / np.sqrt(512)).astype(np.float32)
    inits += [numpy_helper.from_array(fc, "fc_w"), numpy_helper.from_array(np.zeros(1000, np.float32), "fc_b")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"]), helper.make_node("Flatten", ["gap"], ["flat"]),
              helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "resnet18", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                [1, 3, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1000])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), macs + 512 * 1000


class _RandomImages(CalibrationDataReader):
    def __init__(self, size: int) -> None:
        rng = np.random.default_rng(2)
        self.images = iter([{"x": rng.standard_normal((1, 3, size, size)).astype(np.float32)} for _ in range(4)])

    def get_next(self) -> dict | None:
        return next(self.images, None)


def quantized(model: onnx.ModelProto, size: int, per_channel: bool) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "f.onnx"), os.path.join(tmp, "q.onnx")
        onnx.save(model, src)
        quantize_static(src, dst, _RandomImages(size), quant_format=QuantFormat.QDQ, per_channel=per_channel)
        return onnx.load(dst)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor, not per channel")
    p.add_argument("--wall", action="store_true", help="wall-clock time instead of this thread's CPU time")
    args = p.parse_args()
    fp32, macs = resnet18(args.size)
    int8 = quantized(fp32, args.size, not args.per_tensor)
    t0 = time.perf_counter()
    run = engines(fp32, int8, args.threads)
    print(f"ResNet-18 {args.size}x{args.size}, {macs / 1e9:.2f} GMAC, quantize_static QDQ "
          f"({'per tensor' if args.per_tensor else 'per channel'}), {args.threads} thread(s); "
          f"compiled in {time.perf_counter() - t0:.0f} s")
    feeds = {"x": np.random.default_rng(1).standard_normal((1, 3, args.size, args.size)).astype(np.float32)}
    outs = {name: fn(feeds)[0] for name, fn in run.items()}
    step = next(float(numpy_helper.to_array(t)) for t in int8.graph.initializer if t.name == "y_scale")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the QDQ model as written
    written = ort.InferenceSession(int8.SerializeToString(), options, providers=["CPUExecutionProvider"])
    reference = written.run(None, feeds)[0]
    print(f"  max error in output steps: aic int8 vs the QDQ model run unfused by onnxruntime "
          f"{np.abs(outs['aic int8'] - reference).max() / step:.1f}, ort int8 vs it "
          f"{np.abs(outs['ort int8'] - reference).max() / step:.1f}, aic int8 vs ort int8 "
          f"{np.abs(outs['aic int8'] - outs['ort int8']).max() / step:.1f}; int8 vs fp32 "
          f"{np.abs(outs['aic int8'] - outs['ort fp32']).max() / np.abs(outs['ort fp32']).max():.2e} rel")
    r = interleaved(run, feeds, args.seconds, time.perf_counter if args.wall else time.thread_time)
    for name, t in r.items():
        print(f"  {name:9s} {t * 1e3:8.2f} ms  {macs / t / 1e9:6.1f} GMAC/s  aic int8 / this {r['aic int8'] / t:5.2f}")


if __name__ == "__main__":
    main()
