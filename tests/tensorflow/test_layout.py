"""NHWC models keep no Transpose inside at -O2, and their batch norms and biases fold into the convolutions."""

from __future__ import annotations

from collections import Counter

import keras
import numpy as np
from aic.compiler.passes import optimize
from aic.compiler.shapes import bind_shapes
from aic.frontend.tensorflow import load_tensorflow

import aic

from .models import randomize_batch_norm, small_cnn
from .util import close


def _optimized_ops(model: keras.Model) -> tuple[Counter[str], list]:
    graph, _ = optimize(bind_shapes(load_tensorflow(model), {"batch": 1}), 2)
    transposes = [n for n in graph.nodes if n.op == "Transpose"]
    return Counter(n.op for n in graph.nodes), [n.inputs[0] for n in transposes]


def test_small_cnn_transposes_cancel_and_batch_norm_folds() -> None:
    ops, transposed = _optimized_ops(small_cnn())
    assert transposed and all(v.producer is None for v in transposed), "only the graph input is transposed"
    assert ops["Transpose"] == 1
    assert ops["Mul"] == 0 and ops["Add"] == 1, ops  # batch norms and biases folded; the residual add stays


def test_mobilenet_v2_small_input_compiles_and_matches() -> None:
    keras.utils.set_random_seed(0)
    model = randomize_batch_norm(keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35))
    ops, transposed = _optimized_ops(model)
    assert ops["Transpose"] == 1 and transposed[0].producer is None, ops
    module = aic.compile(model, shapes={"batch": 1})
    x = np.random.default_rng(0).standard_normal((1, 32, 32, 3)).astype(np.float32)
    (actual,) = module.run(None, {module.inputs[0].name: x})
    close(actual, model(x, training=False).numpy(), "MobileNetV2")
