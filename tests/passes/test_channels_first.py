"""The `channels-first` pass: ConvNeXt's channel MLP (Transpose, LayerNorm, MatMul, Gelu, MatMul, Transpose back)
computed on the channels-first map as ChannelLayerNorm and 1x1 convolutions; compiled against onnxruntime
(1e-4 relative), and left alone where the Transposes would not cancel."""

from __future__ import annotations

import pytest
from aic.compiler.passes import optimize
from aic.frontend.onnx import load_model
from aic.ir import run_graph
from onnx import helper

import aic
from tests.onnx_util import assert_close, run_ort
from tests.onnx_util import graph_model as model
from tests.test_blocked_layout import f


def convnext_block(channels: int, shape: tuple[int, ...], batch: int = 1):
    """A depthwise convolution, then the channel MLP in channels-last form, layer scale, residual; `shape` the map
    (two dims: 2-D, one: 1-D)."""
    rank = len(shape) + 2
    last, back = [0, *range(2, rank), 1], [0, rank - 1, *range(1, rank - 1)]
    k = [7] * len(shape)
    w = {"dw": f(channels, 1, *k, scale=0.2), "db": f(channels), "g": f(channels), "b": f(channels),
         "w1": f(channels, 4 * channels, scale=0.3), "b1": f(4 * channels), "w2": f(4 * channels, channels, scale=0.2),
         "b2": f(channels), "gamma": f(channels)}
    nodes = [helper.make_node("Conv", ["x", "dw", "db"], ["d"], group=channels, pads=[3] * 2 * len(shape)),
             helper.make_node("Transpose", ["d"], ["t"], perm=last),
             helper.make_node("LayerNormalization", ["t", "g", "b"], ["n"], axis=-1, epsilon=1e-6),
             helper.make_node("MatMul", ["n", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Gelu", ["hb"], ["a"]), helper.make_node("MatMul", ["a", "w2"], ["o"]),
             helper.make_node("Add", ["o", "b2"], ["ob"]), helper.make_node("Mul", ["ob", "gamma"], ["s"]),
             helper.make_node("Transpose", ["s"], ["sb"], perm=back), helper.make_node("Add", ["x", "sb"], ["y"])]
    x = f(batch, channels, *shape)
    return model(nodes, {"x": x}, ["y"], w), {"x": x}


def ops(m) -> list[str]:
    graph, _ = optimize(load_model(m), 2)
    return [n.op for n in graph.nodes]


@pytest.mark.parametrize(("channels", "shape", "batch", "threads"), [
    (16, (28, 28), 1, 1), (24, (29, 31), 2, 2), (8, (800,), 2, 1)], ids=["28x28", "odd-map-batch-2-threads", "1-D"])
def test_channel_mlp_without_transposes(channels, shape, batch, threads):
    """No Transpose, MatMul or LayerNormalization is left: one ChannelLayerNorm, the depthwise and two 1x1
    convolutions (the residual Add in the last one's epilogue); the depthwise convolution stays plain."""
    m, feeds = convnext_block(channels, shape, batch)
    seen = ops(m)
    assert not {"Transpose", "MatMul", "LayerNormalization", "ConvBlocked"} & set(seen), seen
    assert seen.count("ChannelLayerNorm") == 1 and seen.count("Conv") == 3, seen
    expected = run_ort(m, feeds)[0]
    assert_close(aic.compile(m, num_threads=threads, cache=False).run(None, feeds)[0], expected, 1e-4, 1e-4)


def test_small_maps_keep_their_matmuls():
    """Under MIN_POSITIONS positions (14x14) the MatMuls stay, and so do the Transposes the LayerNorm reads through."""
    seen = ops(convnext_block(16, (14, 14))[0])
    assert "MatMul" in seen and "LayerNormalization" in seen and "ChannelLayerNorm" not in seen, seen


def test_layer_norm_between_transposes_on_small_maps():
    """A LayerNorm between a Transpose and its inverse (a stage edge) runs channels-first at any size."""
    w = {"g": f(8), "b": f(8)}
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("LayerNormalization", ["t", "g", "b"], ["n"], axis=-1, epsilon=1e-6),
             helper.make_node("Transpose", ["n"], ["y"], perm=[0, 3, 1, 2])]
    x = f(2, 8, 7, 7)
    m = model(nodes, {"x": x}, ["y"], w)
    assert ops(m) == ["ChannelLayerNorm"]
    assert_close(aic.compile(m, num_threads=1, cache=False).run(None, {"x": x})[0], run_ort(m, {"x": x})[0], 1e-4,
                 1e-4)


def test_layer_norm_read_channels_last_stays():
    """The normalized map is also a graph output in channels-last order: moving the Transpose would add one."""
    m, _ = convnext_block(8, (28, 28))
    m.graph.output.append(helper.make_tensor_value_info("n", 1, None))
    assert "LayerNormalization" in ops(m)


def test_matmul_by_computed_weights_stays():
    """Weights computed at run time are no convolution's: the Transposes stay, so the LayerNorm reads through one."""
    m, _ = convnext_block(8, (28, 28))
    m.graph.input.append(helper.make_tensor_value_info("w2", 1, [32, 8]))
    m.graph.initializer.remove(next(i for i in m.graph.initializer if i.name == "w2"))
    seen = ops(m)
    assert "LayerNormalization" in seen and "ChannelLayerNorm" not in seen, seen


def test_disabled_by_name():
    m, _ = convnext_block(8, (28, 28))
    graph, _ = optimize(load_model(m), 2, disable=["channels-first"])
    assert "ChannelLayerNorm" not in {n.op for n in graph.nodes}


def test_reference_semantics():
    """ChannelLayerNorm's reference (the interpreter) against onnxruntime's LayerNorm through the Transposes."""
    m, feeds = convnext_block(16, (28, 30), 2)
    graph, _ = optimize(load_model(m), 2)
    assert "ChannelLayerNorm" in {n.op for n in graph.nodes}
    assert_close(run_graph(graph, feeds)[0], run_ort(m, feeds)[0], 1e-4, 1e-4)


def test_run_time_batch(tmp_path):
    """A batch size known at run time: the pass still applies, ChannelLayerNorm's positions stay on the lanes."""
    m, _ = convnext_block(8, (28, 29), 2)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "n"
    module = aic.compile(m, shapes={"n": (1, 4, 2)}, output=tmp_path / "m.so", num_threads=1)
    assert "ChannelLayerNorm" in ops(m)
    for batch in (1, 3):
        x = f(batch, 8, 28, 29)
        assert_close(module.run(None, {"x": x})[0], run_ort(m, {"x": x})[0], 1e-4, 1e-4)
