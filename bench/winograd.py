"""Winograd F(4,3) against the direct 3x3 kernels: A/B in one process, per convolution and per model.

    python -m bench.winograd [--models unet_small yolo_head resnet50 vgg] [--convs] [--threads 1 2]
                             [--seconds 2] [--models-dir DIR]

Each model (an exported ONNX file `<name>_dynamo_op20.onnx` in --models-dir, or `vgg`: a VGG-style
stack of 3x3 convolutions built here with random weights, tuned for by no one) is compiled twice, the
Winograd rule on and off (`MIN_CHANNELS` raised above every convolution), and the two modules take turns
(bench/int8.py `interleaved`); at 1 thread the time is the calling thread's CPU time (robust on a busy
machine), at 2 threads wall time. Both outputs are compared with onnxruntime (max error relative to the
output's max). `--convs` does the same for single Conv+bias+Relu layers of the benchmark models' shapes.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
from aic.compiler.lower import conv_winograd
from onnx import TensorProto, helper, numpy_helper

import aic
from bench.check_interp import ort_session, relative_error
from bench.int8 import interleaved

MODELS_DIR = Path(__file__).parent / "models"
CONVS = [  # C_in, H, W, C_out: the 3x3 stride-1 convolutions of ResNet-50, the UNet and the YOLO-style head
    (64, 56, 56, 64), (128, 28, 28, 128), (256, 14, 14, 256), (512, 7, 7, 512),
    (32, 128, 128, 32), (64, 64, 64, 64), (128, 32, 32, 128), (256, 16, 16, 256), (256, 32, 32, 128),
    (16, 160, 160, 16), (32, 80, 80, 32), (64, 40, 40, 64), (128, 20, 20, 128), (256, 10, 10, 256),
]


@contextmanager
def winograd(on: bool):
    """Compile with the Winograd rule as it is (`on`) or taking no convolution."""
    saved = conv_winograd.MIN_CHANNELS
    conv_winograd.MIN_CHANNELS = saved if on else 1 << 30
    try:
        yield
    finally:
        conv_winograd.MIN_CHANNELS = saved


def vgg(size: int = 112, seed: int = 0) -> onnx.ModelProto:
    """A VGG-16-style stack at `size` x `size`: 3x3 convolutions (+ bias, Relu) in 5 stages, 2x2 max pools."""
    rng = np.random.default_rng(seed)
    nodes, inits, x, cin = [], [], "x", 3
    for stage, (width, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
        for i in range(convs):
            name = f"s{stage}c{i}"
            w = (rng.standard_normal((width, cin, 3, 3)) * np.sqrt(2 / (9 * cin))).astype(np.float32)
            inits += [numpy_helper.from_array(w, f"{name}w"),
                      numpy_helper.from_array((rng.standard_normal(width) * 0.1).astype(np.float32), f"{name}b")]
            nodes += [helper.make_node("Conv", [x, f"{name}w", f"{name}b"], [f"{name}c"], pads=[1, 1, 1, 1]),
                      helper.make_node("Relu", [f"{name}c"], [f"{name}r"])]
            x, cin = f"{name}r", width
        nodes.append(helper.make_node("MaxPool", [x], [f"p{stage}"], kernel_shape=[2, 2], strides=[2, 2]))
        x = f"p{stage}"
    out = size // 32
    graph = helper.make_graph(nodes, "vgg", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 512, out, out])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def conv_layer(cin: int, h: int, w: int, cout: int, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    weight = (rng.standard_normal((cout, cin, 3, 3)) / np.sqrt(9 * cin)).astype(np.float32)
    bias = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, h, w])],
                              [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def feeds_of(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    inits = {i.name for i in model.graph.initializer}
    return {v.name: rng.standard_normal([d.dim_value or 1 for d in v.type.tensor_type.shape.dim]).astype(np.float32)
            for v in model.graph.input if v.name not in inits}


def compare(label: str, model: onnx.ModelProto, threads: list[int], seconds: float) -> None:
    """Direct vs Winograd modules of `model`, interleaved, at each thread count; errors against onnxruntime."""
    feeds = feeds_of(model)
    want = ort_session(model.SerializeToString()).run(None, feeds)
    for n in threads:
        modules = {}
        for name, on in (("direct", False), ("winograd", True)):
            with winograd(on):
                modules[name] = aic.compile(model, num_threads=n, cache=False)
        errors = {name: max(relative_error(a, b) for a, b in zip(m.run(None, feeds), want))
                  for name, m in modules.items()}
        clock = time.thread_time if n == 1 else time.perf_counter
        med = interleaved({k: (lambda f, m=m: m.run(None, f)) for k, m in modules.items()}, feeds, seconds, clock)
        print(f"| {label} | {n} | {med['direct'] * 1e3:.2f} | {med['winograd'] * 1e3:.2f} | "
              f"{med['direct'] / med['winograd']:.2f} | {errors['direct']:.1e} | {errors['winograd']:.1e} |",
              flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=["unet_small", "yolo_head", "resnet50", "vgg"])
    p.add_argument("--convs", action="store_true", help="single convolutions of the benchmark models' shapes")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    args = p.parse_args()
    print("| model | threads | direct ms | Winograd ms | speed-up | direct rel err | Winograd rel err |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    if args.convs:
        for cin, h, w, cout in CONVS:
            compare(f"{cin}x{h}x{w} -> {cout}", conv_layer(cin, h, w, cout), args.threads, args.seconds)
    for name in args.models:
        model = vgg() if name == "vgg" else onnx.load(args.models_dir / f"{name}_dynamo_op20.onnx")
        compare(name, model, args.threads, args.seconds)


if __name__ == "__main__":
    main()
