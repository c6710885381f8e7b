"""int8 CNNs: aic fp32, aic int8 and onnxruntime int8 (and fp32), interleaved in one process.

    python -m bench.int8_cnn [--model resnet18|mobilenet_v2] [--size 224] [--threads 1] [--seconds 3]
                             [--per-tensor] [--wall]

A ResNet-18 (7x7 s2 stem, max pool, 4 stages of 2 basic blocks, 64..512 channels, 1x1 s2 shortcuts) or a
MobileNetV2 (width 1.0: 1x1 expand, depthwise 3x3, 1x1 project, Relu6), with global pool and a 1000-way
Gemm, batch norms as if folded (Conv with bias), built with `onnx.helper` from random weights, quantized
by onnxruntime's `quantize_static` in the QDQ format (int8 activations and weights, per output channel
unless `--per-tensor`; calibrated on 4 random images). Engines take turns in a rotating order; medians
of the per-call CPU time of this thread (`--wall`: wall-clock time). The int8 outputs are compared (max
error in output quantisation steps) with onnxruntime's int8 run and with the QDQ model run as written
(onnxruntime with graph optimizations off: dequantize, float Conv, quantize).
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

STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))  # ResNet-18: (channels, stride of the first block)
INVERTED = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1))  # MobileNetV2: (expansion, channels, blocks, stride of the first block)


class _Net:
    """Conv (+ bias, + Relu / Relu6) layers with random He-initialised weights, counting multiply-adds."""

    def __init__(self, size: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.size, self.macs = size, 0

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int, hw: int, act: str = "",
             group: int = 1) -> tuple[str, int]:
        name = f"conv{len(self.inits) // 2}"
        w = (self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2 / (cin // group * k * k)))
        self.inits += [numpy_helper.from_array(w.astype(np.float32), f"{name}_w"),
                       numpy_helper.from_array((self.rng.standard_normal(cout) * 0.1).astype(np.float32),
                                               f"{name}_b")]
        out = -(-hw // stride)
        self.macs += cin // group * cout * k * k * out * out
        self.nodes.append(helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [f"{name}_c" if act else name],
                                           pads=[k // 2] * 4, strides=[stride] * 2, group=group))
        if act == "relu":
            self.nodes.append(helper.make_node("Relu", [f"{name}_c"], [name]))
        elif act == "relu6":
            self.inits += [numpy_helper.from_array(np.float32(0), f"{name}_lo"),
                           numpy_helper.from_array(np.float32(6), f"{name}_hi")]
            self.nodes.append(helper.make_node("Clip", [f"{name}_c", f"{name}_lo", f"{name}_hi"], [name]))
        return name, out

    def add(self, a: str, b: str, relu: bool) -> str:
        self.nodes.append(helper.make_node("Add", [a, b], [f"{a}_sum"]))
        if not relu:
            return f"{a}_sum"
        self.nodes.append(helper.make_node("Relu", [f"{a}_sum"], [f"{a}_out"]))
        return f"{a}_out"

    def model(self, x: str, channels: int, name: str) -> tuple[onnx.ModelProto, int]:
        """Global pool and a 1000-way Gemm after `x`: the model and its multiply-adds per image."""
        fc = (self.rng.standard_normal((1000, channels)) / np.sqrt(channels)).astype(np.float32)
        self.inits += [numpy_helper.from_array(fc, "fc_w"), numpy_helper.from_array(np.zeros(1000, np.float32),
                                                                                      "fc_b")]
        self.nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"]),
                       helper.make_node("Flatten", ["gap"], ["flat"]),
                       helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], transB=1)]
        graph = helper.make_graph(self.nodes, name, [helper.make_tensor_value_info(
            "x", TensorProto.FLOAT, [1, 3, self.size, self.size])], [helper.make_tensor_value_info(
                "y", TensorProto.FLOAT, [1, 1000])], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), self.macs + channels * 1000


def resnet18(size: int, seed: int = 0) -> tuple[onnx.ModelProto, int]:
    """ResNet-18 and its multiply-adds per image."""
    net = _Net(size, seed)
    x, hw = net.conv("x", 3, 64, 7, 2, size, "relu")
    net.nodes.append(helper.make_node("MaxPool", [x], ["pool"], kernel_shape=[3, 3], strides=[2, 2],
                                      pads=[1, 1, 1, 1]))
    x, hw, cin = "pool", -(-hw // 2), 64
    for channels, stride in STAGES:
        for block in range(2):
            s = stride if block == 0 else 1
            h, out = net.conv(x, cin, channels, 3, s, hw, "relu")
            h, _ = net.conv(h, channels, channels, 3, 1, out)
            shortcut = net.conv(x, cin, channels, 1, s, hw)[0] if s > 1 or cin != channels else x
            x, hw, cin = net.add(h, shortcut, True), out, channels
    return net.model(x, cin, "resnet18")


def mobilenet_v2(size: int, seed: int = 0) -> tuple[onnx.ModelProto, int]:
    """MobileNetV2 (width 1.0: inverted residuals, depthwise 3x3, Relu6) and its multiply-adds per image."""
    net = _Net(size, seed)
    x, hw = net.conv("x", 3, 32, 3, 2, size, "relu6")
    cin = 32
    for t, channels, blocks, stride in INVERTED:
        for block in range(blocks):
            s = stride if block == 0 else 1
            h, hidden = x, cin * t
            if t != 1:
                h, _ = net.conv(h, cin, hidden, 1, 1, hw, "relu6")
            h, out = net.conv(h, hidden, hidden, 3, s, hw, "relu6", group=hidden)
            h, _ = net.conv(h, hidden, channels, 1, 1, out)
            x = net.add(h, x, False) if s == 1 and cin == channels else h
            hw, cin = out, channels
    x, _ = net.conv(x, cin, 1280, 1, 1, hw, "relu6")
    return net.model(x, 1280, "mobilenet_v2")


MODELS = {"resnet18": resnet18, "mobilenet_v2": mobilenet_v2}


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
    p.add_argument("--model", choices=sorted(MODELS), default="resnet18")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor, not per channel")
    p.add_argument("--wall", action="store_true", help="wall-clock time instead of this thread's CPU time")
    args = p.parse_args()
    fp32, macs = MODELS[args.model](args.size)
    int8 = quantized(fp32, args.size, not args.per_tensor)
    t0 = time.perf_counter()
    run = engines(fp32, int8, args.threads)
    print(f"{args.model} {args.size}x{args.size}, {macs / 1e9:.2f} GMAC, quantize_static QDQ "
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
