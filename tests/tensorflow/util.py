"""Helpers: run a TensorFlow function and its aic conversion on the same inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from aic.compiler.passes import optimize
from aic.frontend.tensorflow import load_tensorflow
from aic.ir import Graph, run_graph

RTOL = 1e-4


def random_input(spec: tf.TensorSpec, rng: np.random.Generator) -> np.ndarray:
    shape = [d if d is not None else 2 for d in spec.shape]
    if spec.dtype.is_floating:
        return rng.standard_normal(shape).astype(spec.dtype.as_numpy_dtype)
    if spec.dtype == tf.bool:
        return rng.random(shape) > 0.5
    return rng.integers(0, 5, shape).astype(spec.dtype.as_numpy_dtype)


def close(actual: np.ndarray, expected: np.ndarray, what: str, rtol: float = RTOL) -> None:
    """Equal within `rtol` relative to the larger of the element and the output's scale."""
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    scale = max(float(np.abs(expected).max()) if expected.size else 0.0, 1e-6)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def tf_outputs(result: Any) -> list[np.ndarray]:
    if isinstance(result, dict):
        return [np.asarray(result[k]) for k in sorted(result)]
    if isinstance(result, (list, tuple)):
        return [np.asarray(r) for r in result]
    return [np.asarray(result)]


def check_function(fn: Any, specs: list[tf.TensorSpec], opt_level: int = 1, seed: int = 0) -> Graph:
    """Convert `fn` (a tf.function traced on `specs`), run it in aic's interpreter and
    compare with TensorFlow; return the converted graph."""
    rng = np.random.default_rng(seed)
    concrete = tf.function(fn).get_concrete_function(*specs)
    graph = load_tensorflow(concrete)
    feeds = [random_input(s, rng) for s in specs]
    expected = tf_outputs(concrete(*[tf.constant(f) for f in feeds]))
    optimized, _ = optimize(graph, opt_level)
    actual = run_graph(optimized, {v.name: f for v, f in zip(optimized.inputs, feeds)})
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        close(np.asarray(a), e, f"output {i}")
    return graph
