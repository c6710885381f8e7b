"""The `fuse-expand` pass: an expand 1x1 convolution computed inside the depthwise convolution it feeds, band by
band or plane by plane, where its output overflows L2; compiled against onnxruntime (1e-4 relative)."""

from __future__ import annotations

import numpy as np
import pytest
from aic.compiler.kernel_table import kernel_calls
from aic.compiler.passes import optimize
from aic.compiler.pipeline import lower_model
from aic.frontend.onnx import load_model
from onnx import helper

import aic
from tests.onnx_util import assert_close, run_ort
from tests.onnx_util import graph_model as model
from tests.test_blocked_layout import conv, f, mbconv


def relu_block(channels: int, hidden: int, size: int, batch: int = 1, clip: bool = False):
    """MnasNet's: expand 1x1 + Relu, depthwise 3x3 stride 2 + Relu, project 1x1; or MobileNetV2's expand + a Clip
    (to [0, 0.5] here, so that both bounds bite)."""
    w: dict[str, np.ndarray] = {"lo": np.array(0, np.float32), "hi": np.array(0.5, np.float32)}
    act = helper.make_node("Clip", ["e", "lo", "hi"], ["er"]) if clip else helper.make_node("Relu", ["e"], ["er"])
    nodes = [conv("x", "e", channels, hidden, w), act,
             conv("er", "d", hidden, hidden, w, 3, hidden, strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["d"], ["dr"]), conv("dr", "y", hidden, channels, w)]
    x = f(batch, channels, size, size)
    return model(nodes, {"x": x}, ["y"], w), {"x": x}


def expansions(m) -> int:
    graph, _ = optimize(load_model(m), 2)
    return sum(n.op == "ConvBlocked" and len(n.inputs) > 4 for n in graph.nodes)


@pytest.mark.parametrize(("block", "threads"), [("relu", 1), ("silu-pooled", 2), ("relu-batch-odd-rows", 2),
                                                ("silu-5x5-whole-plane", 1), ("clip", 1),
                                                ("silu-stride-1-whole-plane", 2)])
def test_expansion_in_the_depthwise_convolution(block, threads):
    """48 expanded channels on 112x112 (2.4 MB): expanded band by band in the depthwise kernel (Relu: bands
    outermost; SiLU with a squeeze-excite pool: planes outermost); 110x110 in a batch of two: rows that end in a
    shorter register tile and a last band of fewer rows; 96 channels on 56x56 (1.2 MB) by a 5x5 kernel at stride 2
    and a 3x3 at stride 1: each block's whole padded plane expanded on the stack (no row expanded twice); a Clip
    after the expansion (ReLU6). The host's code: fused where it has AVX-512."""
    m, feeds = {"relu": lambda: relu_block(8, 48, 112), "silu-pooled": lambda: mbconv(8, 6, 3, 2, 112),
                "relu-batch-odd-rows": lambda: relu_block(8, 48, 110, batch=2),
                "silu-5x5-whole-plane": lambda: mbconv(8, 12, 5, 2, 56),
                "clip": lambda: relu_block(8, 48, 112, clip=True),
                "silu-stride-1-whole-plane": lambda: mbconv(8, 12, 3, 1, 56)}[block]()
    assert expansions(m) == 1
    expected = run_ort(m, feeds)
    actual = aic.compile(m, num_threads=threads, cache=False).run(None, feeds)
    for a, e in zip(actual, expected):
        assert_close(a, e, rtol=1e-4, atol=1e-4)


def test_banded_stride_one_small_and_deep_expansions_stay_apart():
    """Stride 1 on a plane expanded in bands (112x112: 2 rows in 18 expanded twice), 150 KB of expanded channels (in
    L2), and an expansion of 40 channels (one block by 16 positions: slower than the blocked products' tiles)."""
    assert expansions(mbconv(8, 6, 3, 1, 112)[0]) == 0
    assert expansions(relu_block(8, 48, 28)[0]) == 0
    assert expansions(relu_block(40, 240, 56)[0]) == 0


def test_expansion_read_elsewhere_stays_apart():
    """The expanded tensor is also a graph output: it must be written."""
    m, _ = relu_block(8, 48, 112)
    m.graph.output.append(helper.make_tensor_value_info("er", 1, None))
    assert expansions(m) == 0


def test_clip_with_a_bound_computed_at_run_time_stays_apart():
    m, _ = relu_block(8, 48, 112, clip=True)
    m.graph.input.append(helper.make_tensor_value_info("top", 1, []))
    next(n for n in m.graph.node if n.op_type == "Clip").input[2] = "top"
    assert expansions(m) == 0


@pytest.mark.parametrize(("target", "fused"), [
    ("llvm -mcpu=znver4", True), ("llvm -mcpu=znver4 -mattr=-avx512f", False), ("llvm -mcpu=haswell", False)])
def test_only_avx512_targets_fuse(target, fused):
    """The fused tile wants 32 vector registers: AVX2 code keeps the expand and depthwise kernels apart."""
    calls = kernel_calls(lower_model(relu_block(16, 48, 112)[0], target).calls)
    convolutions = [c.kernel.name for c in calls if "convblocked" in c.kernel.name]
    assert len(convolutions) == (2 if fused else 3), convolutions
