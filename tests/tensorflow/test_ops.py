"""TensorFlow ops through the frontend, against TensorFlow, in aic's interpreter."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from .util import check_function

F = tf.float32


def spec(*shape: int | None, dtype: tf.DType = F) -> tf.TensorSpec:
    return tf.TensorSpec(shape, dtype)


CASES = {
    "elementwise": (
        lambda x, y: [x + y, x - y, x * y, x / (tf.abs(y) + 1), tf.maximum(x, y), tf.minimum(x, y),
                      tf.math.squared_difference(x, y), tf.pow(tf.abs(x) + 1, y), tf.math.floordiv(x, tf.abs(y) + 1),
                      tf.math.floormod(x, tf.abs(y) + 1)],
        [spec(2, 3), spec(3)],
    ),
    "unary": (
        lambda x: [tf.math.rsqrt(tf.abs(x) + 1), tf.sqrt(tf.abs(x)), tf.exp(x), tf.math.log(tf.abs(x) + 1), -x,
                   tf.abs(x), tf.square(x), tf.nn.relu(x), tf.nn.relu6(x * 4), tf.nn.elu(x), tf.nn.selu(x),
                   tf.nn.leaky_relu(x, 0.3), tf.nn.gelu(x), tf.nn.gelu(x, approximate=True), tf.sigmoid(x),
                   tf.tanh(x), tf.nn.softplus(x), tf.nn.swish(x), tf.nn.softmax(x), tf.nn.log_softmax(x)],
        [spec(2, 5)],
    ),
    "integer": (
        lambda a, b: [a // (b + 1), tf.math.floormod(a - 2, b + 1), a * b - a, tf.cast(a, F) / 2],
        [spec(4, dtype=tf.int32), spec(4, dtype=tf.int32)],
    ),
    "compare_logic": (
        lambda x, y: [tf.cast(tf.logical_and(x > y, x >= 0), F), tf.cast(tf.logical_or(x < y, x <= 0), F),
                      tf.cast(tf.logical_not(tf.equal(x, y)), F), tf.cast(tf.not_equal(x, y), F),
                      tf.where(x > y, x, y)],
        [spec(3, 4), spec(3, 4)],
    ),
    "reductions": (
        lambda x: [tf.reduce_mean(x, [1, 2]), tf.reduce_sum(x, 1, keepdims=True), tf.reduce_max(x, -1),
                   tf.reduce_min(x, 0), tf.reduce_prod(x, 2), tf.cast(tf.reduce_all(x > -1, 1), F),
                   tf.cast(tf.reduce_any(x > 1, [0, 2]), F), tf.argmax(x, 1), tf.argmin(x, 2, output_type=tf.int32),
                   tf.cumsum(x, 1), tf.cumsum(x, 2, exclusive=True, reverse=True)],
        [spec(2, 3, 4)],
    ),
    "matmul": (
        lambda a, b, c: [tf.matmul(a, b), tf.matmul(a, a, transpose_b=True), tf.matmul(c, c, adjoint_a=True),
                         tf.einsum("bij,bkj->bik", c, c)],
        [spec(3, 4), spec(4, 5), spec(2, 4, 3)],
    ),
    "shapes": (
        lambda x: [tf.reshape(x, [-1, 6]), tf.squeeze(tf.expand_dims(x, 1), [1]), tf.transpose(x, [2, 0, 1]),
                   tf.concat([x, x], 1), tf.stack([x, x], -1), tf.unstack(x, axis=1)[2],
                   tf.split(x, 2, axis=2)[1], tf.split(x, [1, -1], axis=1)[1], tf.tile(x, [1, 2, 1]),
                   tf.broadcast_to(x[:, :1], [2, 5, 4]), tf.zeros_like(x), tf.ones_like(x),
                   tf.fill(tf.shape(x)[1:], 3.0), tf.cast(tf.shape(x), F), tf.cast(tf.size(x), F),
                   tf.reverse(x, [1])],
        [spec(2, 3, 4)],
    ),
    "slices": (
        lambda x: [x[1:, ::2], x[..., -1], x[:, None, 1:3], x[::-1, 2:0:-1], tf.slice(x, [0, 1, 1], [-1, 2, 2]),
                   x[0], x[tf.newaxis, ..., 1:2], x[:, -2:]],
        [spec(3, 4, 5)],
    ),
    "dynamic_slices": (
        lambda x, k: [x[k % 3], x[:, k % 4 : k % 4 + 2], x[-1 - k % 2, 1:]],
        [spec(3, 4, 5), spec(dtype=tf.int32)],
    ),
    "index": (
        lambda x, j: (i := j % 3) is None or [tf.gather(x, i, axis=1), tf.gather_nd(x, tf.stack([i, i], -1)),
                      tf.one_hot(i, 5, on_value=2.0, off_value=-1.0), tf.math.top_k(x[0], 2)[0],
                      tf.cast(tf.math.top_k(x[0], 2)[1], F), tf.cast(tf.where(x > 0.5), F),
                      tf.range(1, 10, 2)],
        [spec(3, 4), spec(3, dtype=tf.int32)],
    ),
    "pads": (
        lambda x: [tf.pad(x, [[0, 0], [1, 2], [2, 1], [0, 0]]),
                   tf.pad(x, [[0, 0], [1, 1], [0, 2], [0, 0]], constant_values=3),
                   tf.pad(x, [[0, 0], [2, 1], [1, 2], [0, 0]], "REFLECT"),
                   tf.pad(x, [[0, 0], [2, 1], [1, 2], [0, 0]], "SYMMETRIC")],
        [spec(1, 4, 5, 2)],
    ),
    "resize": (
        lambda x: [tf.image.resize(x, [7, 9]), tf.image.resize(x, [8, 10], "nearest"),
                   tf.compat.v1.image.resize_bilinear(x, [7, 9], align_corners=True),
                   tf.compat.v1.image.resize_nearest_neighbor(x, [8, 10])],
        [spec(1, 4, 5, 2)],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_family(name: str) -> None:
    fn, specs = CASES[name]
    check_function(fn, specs)


def _conv_weights(*shape: int) -> tf.Tensor:
    return tf.constant(np.random.default_rng(1).standard_normal(shape).astype(np.float32))


NN = {
    "conv2d_same_strided": lambda x: tf.nn.conv2d(x, _conv_weights(3, 3, 3, 4), 2, "SAME"),
    "conv2d_valid_dilated": lambda x: tf.nn.conv2d(x, _conv_weights(3, 3, 3, 4), 1, "VALID", dilations=2),
    "conv2d_explicit_bias": lambda x: tf.nn.bias_add(
        tf.nn.conv2d(x, _conv_weights(2, 2, 3, 4), 1, [[0, 0], [1, 0], [0, 2], [0, 0]]), tf.ones([4])
    ),
    "conv2d_grouped": lambda x: tf.nn.conv2d(tf.concat([x, x], -1), _conv_weights(3, 3, 2, 6), 1, "SAME"),
    "depthwise": lambda x: tf.nn.depthwise_conv2d(x, _conv_weights(3, 3, 3, 2), [1, 2, 2, 1], "SAME"),
    "conv_transpose_same": lambda x: tf.nn.conv2d_transpose(x, _conv_weights(3, 3, 5, 3), [1, 16, 18, 5], 2, "SAME"),
    "conv_transpose_valid": lambda x: tf.nn.conv2d_transpose(x, _conv_weights(3, 3, 5, 3), [1, 17, 19, 5], 2, "VALID"),
    "pools": lambda x: [tf.nn.max_pool2d(x, 3, 2, "SAME"), tf.nn.avg_pool2d(x, 3, 2, "SAME"),
                        tf.nn.avg_pool2d(x, 2, 2, "VALID")],
    "fused_batch_norm": lambda x: tf.compat.v1.nn.fused_batch_norm(
        x, tf.constant([1.0, 2.0, 0.5]), tf.constant([0.1, 0.2, 0.3]), tf.constant([0.5, -0.5, 0.0]),
        tf.constant([1.0, 2.0, 3.0]), epsilon=1e-3, is_training=False)[0],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(NN))
def test_nn(name: str) -> None:
    check_function(NN[name], [spec(1, 8, 9, 3)])


def test_conv3d_and_pool3d() -> None:
    def fn(x):
        y = tf.nn.conv3d(x, _conv_weights(2, 3, 3, 2, 4), [1, 1, 2, 2, 1], "SAME")
        return [y, tf.nn.max_pool3d(y, 2, 2, "VALID"), tf.nn.avg_pool3d(y, 2, 1, "SAME")]

    check_function(fn, [spec(1, 4, 6, 6, 2)])


def test_cond_and_while() -> None:
    def fn(x, n):
        y = tf.cond(tf.reduce_sum(x) > 0, lambda: x * 2.0, lambda: x - 1.0)

        def body(i, acc):
            return i + 1, acc * 0.5 + tf.cast(i, F) + x[i % 2]

        _, z = tf.while_loop(lambda i, acc: i < n, body, [tf.constant(0), y])
        return [y, z]

    graph = check_function(fn, [spec(2, 3), spec(dtype=tf.int32)])
    ops = {node.op for node in graph.nodes}
    assert {"If", "Loop"} <= ops, ops
    for seed in (1, 2, 3):  # both branches, various trip counts
        check_function(fn, [spec(2, 3), spec(dtype=tf.int32)], seed=seed)
