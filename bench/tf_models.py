"""Keras applications through aic's TensorFlow frontend against the same models via tf2onnx.

    python -m bench.tf_models [--models ResNet50 MobileNetV2 EfficientNetB0 DenseNet121] [--size 224]
                              [--runs 20] [--warmup 3] [--threads 1] [--out bench/out]

Each model (weights=None, random batch-norm statistics, batch 1) is compiled twice: from the
Keras object through the TensorFlow frontend, and from tf2onnx's ONNX conversion (opset 17)
through the ONNX frontend. Both modules are timed alternately, run by run, with a 50 ms pause
before each timed run; medians after the warm-ups. Outputs are checked against TensorFlow
(max|aic - TF| / max|TF|); the -O2 graph's Transpose count is reported for each path. Needs
TensorFlow and tf2onnx (`pip install tf2onnx --no-deps`: its pinned protobuf is older than
TensorFlow's).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf
from aic.compiler.passes import optimize
from aic.compiler.shapes import bind_shapes
from aic.frontend.load import read_model

import aic

OUT_DIR = Path(__file__).resolve().parent / "out"


def build(name: str, size: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape
            layer.moving_mean.assign(rng.standard_normal(n) * 0.1)
            layer.moving_variance.assign(rng.random(n) + 0.5)
    return model


def to_onnx(model: keras.Model, size: int) -> object:
    """tf2onnx's conversion of the frozen function (captured constants frozen too)."""
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((1, size, size, 3), tf.float32, name="image")
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(concrete)
    proto, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(),
        input_names=[t.name for t in frozen.inputs],
        output_names=[t.name for t in frozen.outputs],
        opset=17,
    )
    return proto


def transposes(source: object) -> int:
    graph = read_model(source)
    graph, _ = optimize(bind_shapes(graph, {"batch": 1} if isinstance(source, keras.Model) else None), 2)
    return sum(n.op == "Transpose" for n in graph.nodes)


def median_ms(modules: dict[str, aic.Module], x: np.ndarray, runs: int, warmup: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in modules}
    for i in range(warmup + runs):
        for key, module in modules.items():
            time.sleep(0.05)
            start = time.perf_counter()
            module.run(None, {module.inputs[0].name: x})
            if i >= warmup:
                times[key].append((time.perf_counter() - start) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def bench(name: str, args: argparse.Namespace) -> dict[str, object]:
    model = build(name, args.size)
    x = np.random.default_rng(1).standard_normal((1, args.size, args.size, 3)).astype(np.float32)
    expected = model(x, training=False).numpy()
    row: dict[str, object] = {"model": name, "size": args.size, "threads": args.threads}
    modules = {}
    start = time.perf_counter()
    proto = to_onnx(model, args.size)
    row["tf2onnx_s"] = time.perf_counter() - start
    for key, source in (("tf", model), ("tf2onnx", proto)):
        start = time.perf_counter()
        shapes = {"batch": 1} if key == "tf" else None  # tf2onnx's graph is static already
        modules[key] = aic.compile(source, shapes=shapes, num_threads=args.threads)
        row[f"{key}_compile_s"] = time.perf_counter() - start
        (out,) = modules[key].run(None, {modules[key].inputs[0].name: x})
        row[f"{key}_rel_err"] = float(np.abs(out - expected).max() / np.abs(expected).max())
        row[f"{key}_transposes"] = transposes(source)
    for key, ms in median_ms(modules, x, args.runs, args.warmup).items():
        row[f"{key}_ms"] = ms
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["ResNet50", "MobileNetV2", "EfficientNetB0", "DenseNet121"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models:
        row = bench(name, args)
        print(json.dumps(row), flush=True)
        rows.append(row)
    (args.out / "tf_models.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
