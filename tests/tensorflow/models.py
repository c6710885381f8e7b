"""Small TensorFlow models exported the ways users hand them to aic."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2


def randomize_batch_norm(model: keras.Model, seed: int = 0) -> keras.Model:
    """Random moving statistics and affine parameters, so batch norm is not the identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape
            layer.moving_mean.assign(rng.standard_normal(n) * 0.1)
            layer.moving_variance.assign(rng.random(n) + 0.5)
            layer.gamma.assign(rng.random(n) + 0.5)
            layer.beta.assign(rng.standard_normal(n) * 0.1)
    return model


def small_cnn(size: int = 32) -> keras.Model:
    """Conv/BN/ReLU, a residual add, depthwise conv, pooling and a dense head."""
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inp = keras.Input((size, size, 3), name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    y = layers.Conv2D(8, 3, padding="same")(x)
    y = layers.BatchNormalization()(y)
    x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(16, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(5, activation="softmax", name="probs")(x)
    return randomize_batch_norm(keras.Model(inp, out))


def frozen_graph_def(model: keras.Model, path: Path) -> Path:
    """The model's function with its variables frozen, written as a GraphDef .pb."""
    specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs]
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(*specs)
    frozen = convert_variables_to_constants_v2(concrete)
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    return path
