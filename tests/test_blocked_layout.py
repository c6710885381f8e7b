"""The blocked channel layout (NCHWc): the `blocked-layout` pass's decisions on small graphs, and the
blocked kernels (1x1, depthwise, dense kxk with padding and strides, fused epilogues) compiled, against
onnxruntime (1e-4 relative), odd channel counts included: blocks of 16 channels on this CPU where it has AVX-512,
of 8 in its AVX2 code (TARGETS)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from aic.codegen.target import Target
from aic.compiler.lower.conv_blocked import STRIP, panel_plan
from aic.compiler.passes import optimize
from aic.compiler.pipeline import pass_options
from aic.frontend.onnx import load_model
from aic.ir import run_graph
from aic.ir.ops.blocked import block_array, unblock_array
from onnx import helper

import aic
from tests.onnx_util import assert_close, run_ort
from tests.onnx_util import graph_model as model

rng = np.random.default_rng(8)
TARGETS = pytest.mark.parametrize("target", ["llvm", "llvm -mattr=-avx512f"], ids=["host", "no-avx512"])


def f(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def conv(x: str, y: str, cin: int, cout: int, weights: dict, k: int = 1, group: int = 1, **attrs) -> onnx.NodeProto:
    weights[f"{y}_w"] = f(cout, cin // group, k, k, scale=1 / np.sqrt(cin // group * k * k))
    weights[f"{y}_b"] = f(cout, scale=0.1)
    return helper.make_node("Conv", [x, f"{y}_w", f"{y}_b"], [y], group=group, **attrs)


def mbconv(channels: int, expand: int, k: int, stride: int, size: int, se: bool = True, batch: int = 1,
           act: str = "SiLU"):
    """expand 1x1 + SiLU, depthwise kxk + `act` (SiLU or an op name), squeeze-excite, project 1x1, residual add
    (stride 1)."""
    w: dict[str, np.ndarray] = {}
    hidden = channels * expand
    nodes = [conv("x", "e", channels, hidden, w), helper.make_node("Sigmoid", ["e"], ["es"]),
             helper.make_node("Mul", ["e", "es"], ["ea"]),
             conv("ea", "d", hidden, hidden, w, k, hidden, strides=[stride, stride], pads=[k // 2] * 4)]
    if act == "SiLU":
        nodes += [helper.make_node("Sigmoid", ["d"], ["ds"]), helper.make_node("Mul", ["d", "ds"], ["da"])]
    else:
        nodes.append(helper.make_node(act, ["d"], ["da"]))
    top = "da"
    if se:
        nodes += [helper.make_node("GlobalAveragePool", ["da"], ["p"]), conv("p", "s1", hidden, 4, w),
                  helper.make_node("Relu", ["s1"], ["s1r"]), conv("s1r", "s2", 4, hidden, w),
                  helper.make_node("Sigmoid", ["s2"], ["sg"]), helper.make_node("Mul", ["da", "sg"], ["se"])]
        top = "se"
    nodes.append(conv(top, "pr", hidden, channels, w))
    out = "pr"
    if stride == 1:
        nodes.append(helper.make_node("Add", ["pr", "x"], ["y"]))
        out = "y"
    x = f(batch, channels, size, size)
    return model(nodes, {"x": x}, [out], w), {"x": x}


def optimized(m: onnx.ModelProto, target: str = "llvm"):
    """The graph as compiled for `target` (its block size)."""
    return optimize(load_model(m), 2, options=pass_options(Target.parse(target)))[0]


def block_of(target: str = "llvm") -> int:
    return pass_options(Target.parse(target))["blocked-layout"]["block"]


def check(m: onnx.ModelProto, feeds: dict[str, np.ndarray], blocked: bool = True, threads: int = 1,
          target: str = "llvm") -> None:
    ops = {n.op for n in optimized(m, target).nodes}
    assert ("ConvBlocked" in ops) == blocked, sorted(ops)
    expected = run_ort(m, feeds)
    actual = aic.compile(m, target=target, num_threads=threads, cache=False).run(None, feeds)
    for a, e in zip(actual, expected):
        assert_close(a, e, rtol=1e-4, atol=1e-4)


def test_block_round_trip():
    x = f(2, 13, 3, 5)
    b = block_array(x, 8)
    assert b.shape == (2, 2, 3, 5, 8) and not b[:, 1, ..., 5:].any()
    assert np.array_equal(unblock_array(b, 13), x)


@pytest.mark.parametrize(("channels", "expand", "k", "stride", "size"),
                         [(16, 4, 3, 1, 14), (12, 6, 5, 2, 14), (20, 3, 3, 1, 7)],
                         ids=["3x3s1", "5x5s2-odd", "7x7-odd"])
@TARGETS
def test_mbconv_block(channels, expand, k, stride, size, target):
    check(*mbconv(channels, expand, k, stride, size), target=target)


@pytest.mark.parametrize(("channels", "expand", "size", "folded"), [(16, 4, 14, 1), (12, 6, 5, 1), (16, 1, 7, 0)],
                         ids=["14x14", "odd-blocks", "no-fewer-outputs"])
def test_squeeze_excite_scale_read_by_the_project_convolution(channels, expand, size, folded):
    """The SE scale Mul becomes the project 1x1's input scale (per image: a batch of two) when the project has
    fewer output than input blocks; 196 and 25 positions end in a partial strip of 12."""
    m, feeds = mbconv(channels, expand, 3, 1, size, batch=2)
    graph = optimized(m)
    scaled = [n for n in graph.nodes if n.op == "ConvBlocked" and len(n.inputs) > 3]
    assert len(scaled) == folded and ("Mul" in {n.op for n in graph.nodes}) != bool(folded)
    check(m, feeds)


@pytest.mark.parametrize(("act", "k", "stride", "size"), [("SiLU", 5, 2, 9), ("HardSwish", 3, 1, 7), ("Relu", 3, 2, 8)])
def test_squeeze_excite_pool_summed_by_the_depthwise_convolution(act, k, stride, size):
    """The pool of the activated depthwise output is the depthwise kernel's second output (a batch of two;
    rows of 5, 7 and 4 outputs: shorter spans than a whole one), on two threads."""
    m, feeds = mbconv(12, 4, k, stride, size, batch=2, act=act)
    graph = optimized(m)
    assert "ReduceMean" not in {n.op for n in graph.nodes}
    check(m, feeds, threads=2)


@TARGETS
@pytest.mark.parametrize("size", [10, 13, 17])
def test_depthwise_rows_end_in_a_shorter_span(size, target):
    """Rows of 10, 13 and 17 outputs: whole spans (8 positions with AVX-512's 32 registers, else 6) and one
    shorter span of the rest, the squeeze-excite pool summed over both (a batch of two)."""
    m, feeds = mbconv(12, 4, 5, 1, size, batch=2)
    expected = run_ort(m, feeds)
    actual = aic.compile(m, target=target, cache=False).run(None, feeds)
    for a, e in zip(actual, expected):
        assert_close(a, e, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("stride", "se"), [(1, False), (2, True)], ids=["plain", "strided-pooled"])
def test_depthwise_plane_larger_than_the_stack(stride, se):
    """A padded 94x94 plane of 8 channels is more than the stack takes: it is copied in bands of rows (92 output
    rows: bands of 8 and one of 4; strided, 46: bands of 4 and one of 2)."""
    check(*mbconv(8, 1, 3, stride, 92, se=se))


def test_region_is_converted_at_its_edges_only():
    m, _ = mbconv(16, 4, 3, 1, 14)
    graph = optimized(m)
    ops = [n.op for n in graph.nodes]
    assert ops.count("ConvBlocked") == 5  # expand, depthwise, squeeze, excite, project
    assert ops.count("BlockChannels") == 1  # the input (read by the residual add too)
    assert ops.count("UnblockChannels") == 1  # the output
    assert "GlobalAveragePool" not in ops and "ReduceMean" not in ops  # the pool: the depthwise's second output
    depthwise = next(n for n in graph.nodes if n.op == "ConvBlocked" and n.attrs["group"] > 1)
    assert depthwise.attrs["activation"] == "Swish" and len(depthwise.outputs) == 2
    assert [n.attrs["activation"] for n in graph.nodes if n.op == "ConvBlocked"] == \
        ["Swish", "Swish", "", "Sigmoid", ""]  # expand, depthwise, squeeze (Relu fused), excite, project


def test_large_maps_lone_convs_and_bottlenecks_stay_plain():
    w: dict[str, np.ndarray] = {}
    big = model([conv("x", "a", 8, 8, w), helper.make_node("Relu", ["a"], ["r"]),
                 conv("r", "y", 8, 8, w, 3, 8, pads=[1, 1, 1, 1])], {"x": f(1, 8, 128, 128)}, ["y"], w)
    lone = model([conv("x", "a", 16, 16, w), helper.make_node("Relu", ["a"], ["y"])], {"x": f(1, 16, 14, 14)}, ["y"], w)
    bottleneck = model([conv("x", "a", 64, 16, w), helper.make_node("Relu", ["a"], ["r"]),
                        conv("r", "b", 16, 16, w, 3, pads=[1, 1, 1, 1]), conv("b", "c", 16, 64, w),
                        helper.make_node("Add", ["c", "x"], ["d"]), conv("d", "y", 64, 16, w)],
                       {"x": f(1, 64, 14, 14)}, ["y"], w)  # 1x1 chains cut by a 3x3: not depthwise-separable
    for m in (big, lone, bottleneck):
        graph = optimized(m)
        assert "ConvBlocked" not in {n.op for n in graph.nodes}


@TARGETS
@pytest.mark.parametrize(("channels", "size", "batch", "threads"), [(16, 14, 1, 1), (48, 9, 2, 2)],
                         ids=["14x14", "odd-map-batch-2-threads"])
def test_lone_depthwise_reads_its_plain_input(channels, size, batch, threads, target):
    """ConvNeXt's block: a padded 7x7 depthwise convolution alone between plain tensors is blocked, reading the
    plain input through its plane copies (no BlockChannels), and the LayerNorm over channels after it reads the
    blocked output through UnblockChannels and the Transpose, by vectors of one block."""
    w = {"dw": f(channels, 1, 7, 7, scale=0.2), "db": f(channels), "g": f(channels), "b": f(channels),
         "fc": f(channels, 2 * channels, scale=0.3)}
    nodes = [helper.make_node("Conv", ["x", "dw", "db"], ["d"], group=channels, pads=[3, 3, 3, 3]),
             helper.make_node("Transpose", ["d"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("LayerNormalization", ["t", "g", "b"], ["n"], axis=-1, epsilon=1e-6),
             helper.make_node("MatMul", ["n", "fc"], ["y"])]
    x = f(batch, channels, size, size)
    m = model(nodes, {"x": x}, ["y"], w)
    graph = optimized(m, target)
    ops = [n.op for n in graph.nodes]
    assert "BlockChannels" not in ops and ops[0] == "ConvBlocked" and graph.nodes[0].attrs["block"] == block_of(target)
    expected = run_ort(m, {"x": x})[0]
    got = aic.compile(m, target=target, num_threads=threads, cache=False).run(None, {"x": x})[0]
    assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_disabled_by_name():
    m, _ = mbconv(16, 4, 3, 1, 7)
    graph, _ = optimize(load_model(m), 2, disable=["blocked-layout"])
    assert "ConvBlocked" not in {n.op for n in graph.nodes}


def test_reference_semantics_match_conv():
    m, feeds = mbconv(12, 2, 3, 2, 9)
    graph = optimized(m)
    assert "ConvBlocked" in {n.op for n in graph.nodes}
    assert_close(run_graph(graph, feeds)[0], run_ort(m, feeds)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("cin", "cout", "k", "attrs"), [
    (16, 24, 3, {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # padded, strided, an odd number of output blocks
    (8, 16, 3, {"pads": [0, 1, 2, 0]}),  # uneven pads
    (24, 40, 1, {"strides": [2, 2]}),  # strided 1x1
    (256, 120, 1, {}),  # a project 1x1 whose weights outweigh its input: panels outermost
    (8, 8, 3, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),  # padding by the rule, not by `pads`
], ids=["3x3s2", "3x3-uneven", "1x1s2", "1x1-project-large-weights", "3x3s2-same-upper"])
@pytest.mark.parametrize("block", [8, 16])
def test_dense_blocked_kernels(cin, cout, k, attrs, block):
    """ConvBlocked with one group, built directly (the pass takes 1x1, depthwise, and kxk convolutions of fewer
    input channels than a block), with a fused Relu, against the float64 reference."""
    from aic.ir import DType, GraphBuilder, TensorType

    x, w, bias = f(1, cin, 11, 10), f(cout, cin, k, k), f(cout)
    b = GraphBuilder("g", 21)
    xv = b.input("x", TensorType(DType.float32, x.shape))
    blocked = b.op("BlockChannels", xv, block=block)
    whole = [-(-c // block) * block for c in (cout, cin)]  # channels padded to whole blocks, zero weights
    wp, bp = np.zeros((*whole, k, k), np.float32), np.zeros(whole[0], np.float32)
    wp[:cout, :cin], bp[:cout] = w, bias
    y = b.op("ConvBlocked", blocked, b.const(wp, "w"), b.const(bp, "b"), **attrs)
    out = b.op("UnblockChannels", b.op("Relu", y), channels=cout)
    graph = b.build([out])
    expected = run_graph(graph, {"x": x})[0]
    plain = np.maximum(run_ort(model([helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)], {"x": x}, ["y"],
                                     {"w": w, "b": bias}), {"x": x})[0], 0)
    assert_close(expected, plain, rtol=1e-4, atol=1e-4)
    assert_close(aic.compile(graph, num_threads=1, cache=False).run(None, {"x": x})[0], plain, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("wide", [False, True], ids=["16-registers", "32-registers"])
def test_panels_cover_every_block_once_within_the_registers(wide):
    """Every output block in exactly one panel; a tile's accumulators (rows x blocks) within 12 of AVX2's 16
    vector registers or 24 of AVX-512's 32; tile rows dividing the strip of positions kept in L1."""
    budget = 24 if wide else 12
    for blocks in range(1, 41):
        covered = []
        for first, panels, width, rows in panel_plan(blocks, wide):
            covered += range(first, first + panels * width)
            assert rows * width <= budget and STRIP % rows == 0, (blocks, width, rows)
        assert covered == list(range(blocks)), blocks


@TARGETS
@pytest.mark.parametrize("cout", [8, 16, 24, 40, 48, 56, 72], ids=[
    "1-block", "2-blocks", "3-blocks", "5-blocks", "4-and-2", "4-and-3", "4-and-5"])
def test_activation_over_whole_tile_rows(cout, target):
    """A 1x1 ConvBlocked with its own SiLU (computed over a tile row's blocks as one vector) and a fused
    residual Add after it, against the float64 reference and onnxruntime, on every panel shape of both plans
    (`panel_plan`)."""
    from aic.ir import DType, GraphBuilder, TensorType

    x, w, bias, r = f(1, 16, 7, 9), f(cout, 16, 1, 1, scale=0.5), f(cout), f(1, cout, 7, 9)
    b = GraphBuilder("g", 21)
    xv, rv = b.input("x", TensorType(DType.float32, x.shape)), b.input("r", TensorType(DType.float32, r.shape))
    y = b.op("ConvBlocked", b.op("BlockChannels", xv, block=8), b.const(w, "w"), b.const(bias, "b"), activation="Swish")
    out = b.op("UnblockChannels", b.op("Add", y, b.op("BlockChannels", rv, block=8)), channels=cout)
    graph = b.build([out])
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]), helper.make_node("Sigmoid", ["c"], ["s"]),
             helper.make_node("Mul", ["c", "s"], ["a"]), helper.make_node("Add", ["a", "r"], ["y"])]
    want = run_ort(model(nodes, {"x": x, "r": r}, ["y"], {"w": w, "b": bias}), {"x": x, "r": r})[0]
    assert_close(run_graph(graph, {"x": x, "r": r})[0], want, rtol=1e-4, atol=1e-4)
    got = aic.compile(graph, target=target, num_threads=1, cache=False).run(None, {"x": x, "r": r})[0]
    assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_mean_without_kept_dims_feeds_a_gemm():
    w: dict[str, np.ndarray] = {}
    nodes = [conv("x", "a", 16, 32, w), helper.make_node("Relu", ["a"], ["r"]),
             conv("r", "d", 32, 32, w, 3, 32, pads=[1, 1, 1, 1]), helper.make_node("Clip", ["d", "lo", "hi"], ["c"]),
             helper.make_node("ReduceMean", ["c", "axes"], ["m"], keepdims=0),
             helper.make_node("Gemm", ["m", "g"], ["y"], transB=1)]
    w.update(lo=np.array(0, np.float32), hi=np.array(6, np.float32), axes=np.array([-2, -1], np.int64), g=f(10, 32))
    m = model(nodes, {"x": f(2, 16, 7, 7)}, ["y"], w)
    check(m, {"x": f(2, 16, 7, 7)})


def test_reorder_pairs_cancel_and_squeeze_excite_pairs_alone_stay_plain():
    from aic.compiler.passes.blocked_layout import blocked_layout
    from aic.ir import DType, GraphBuilder, TensorType

    b = GraphBuilder("g", 21)
    x = b.input("x", TensorType(DType.float32, (1, 2, 5, 5, 8)))
    back = b.op("BlockChannels", b.op("UnblockChannels", x, channels=13), block=8)
    graph = blocked_layout(b.build([b.op("Relu", back)]))
    assert [n.op for n in graph.nodes] == ["Relu"] and graph.nodes[0].inputs[0] is graph.inputs[0]

    w: dict[str, np.ndarray] = {}
    se = model([helper.make_node("GlobalAveragePool", ["x"], ["p"]), conv("p", "s", 32, 8, w),
                helper.make_node("Relu", ["s"], ["r"]), conv("r", "e", 8, 32, w),
                helper.make_node("Sigmoid", ["e"], ["g"]), helper.make_node("Mul", ["x", "g"], ["y"])],
               {"x": f(1, 32, 14, 14)}, ["y"], w)
    graph, _ = optimize(load_model(se), 2)
    assert "ConvBlocked" not in {n.op for n in graph.nodes}


def test_same_padding_strided_depthwise_without_bias():
    w = {"dw": f(24, 1, 3, 3), "pw": f(16, 24, 1, 1, scale=0.2)}
    nodes = [helper.make_node("Conv", ["x", "dw"], ["d"], group=24, strides=[2, 2], auto_pad="SAME_UPPER"),
             helper.make_node("HardSwish", ["d"], ["h"]), helper.make_node("Conv", ["h", "pw"], ["y"])]
    x = f(1, 24, 10, 9)
    check(model(nodes, {"x": x}, ["y"], w), {"x": x})


def regnet_block(cin: int, width: int, group_width: int, stride: int, size: int):
    """1x1 + Relu, grouped 3x3 (`group_width` channels per group) + Relu, squeeze-excite, 1x1 project, the
    residual add (stride 1) or a strided 1x1 shortcut, Relu: a RegNetY block."""
    w: dict[str, np.ndarray] = {}
    nodes = [conv("x", "a", cin, width, w), helper.make_node("Relu", ["a"], ["ar"]),
             conv("ar", "g", width, width, w, 3, width // group_width, strides=[stride, stride], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["g"], ["gr"]), helper.make_node("GlobalAveragePool", ["gr"], ["p"]),
             conv("p", "s1", width, 4, w), helper.make_node("Relu", ["s1"], ["s1r"]), conv("s1r", "s2", 4, width, w),
             helper.make_node("Sigmoid", ["s2"], ["sg"]), helper.make_node("Mul", ["gr", "sg"], ["se"]),
             conv("se", "pr", width, width, w)]
    shortcut = "x" if stride == 1 and cin == width else "sc"
    if shortcut == "sc":
        nodes.append(conv("x", "sc", cin, width, w, strides=[stride, stride]))
    nodes += [helper.make_node("Add", ["pr", shortcut], ["sum"]), helper.make_node("Relu", ["sum"], ["y"])]
    x = f(1, cin, size, size)
    return model(nodes, {"x": x}, ["y"], w), {"x": x}


@pytest.mark.parametrize(("cin", "width", "group_width", "stride", "size", "threads"),
                         [(24, 24, 8, 1, 9, 1), (16, 48, 16, 2, 14, 2), (24, 40, 8, 2, 7, 1), (16, 16, 8, 1, 12, 2),
                          (32, 32, 4, 1, 8, 1)],
                         ids=["gw8", "gw16-strided-2threads", "gw8-odd-blocks", "gw8-tiles-of-3x4-rows-2threads",
                              "gw4"])
@TARGETS
def test_grouped_convolutions_of_whole_blocks(cin, width, group_width, stride, size, threads, target):
    """Groups of whole blocks, or of half a block merged in pairs (zero weights across the pair; an odd count's
    last group paired with the padding channels: 3 and 5 groups of 8 in blocks of 16)."""
    m, feeds = regnet_block(cin, width, group_width, stride, size)
    block, groups = block_of(target), width // group_width
    graph = optimized(m, target)
    if group_width * 2 < block:  # (gw4 in blocks of 16)
        assert "ConvBlocked" not in {n.op for n in graph.nodes}
        return
    grouped = [n for n in graph.nodes if n.op == "ConvBlocked" and n.inputs[1].type.shape[2:] == (3, 3)]
    assert len(grouped) == 1 and len(grouped[0].outputs) == 1  # the pool stays a mean of its own
    assert grouped[0].attrs["group"] == (groups if group_width % block == 0 else -(-groups // 2))
    assert grouped[0].inputs[0].type.shape[-1] == block
    check(m, feeds, threads=threads, target=target)


@TARGETS
def test_groups_narrower_than_half_a_block_stay_plain(target):
    m, _ = regnet_block(16, 16, 2, 1, 9)
    assert "ConvBlocked" not in {n.op for n in optimized(m, target).nodes}


@pytest.mark.parametrize(("cin", "cout", "size", "attrs", "threads"), [
    (3, 16, 19, {"strides": [2, 2], "pads": [1, 1, 1, 1]}, 1),  # a 3x3 s2 stem, odd map
    (3, 24, 16, {"strides": [2, 2], "pads": [0, 0, 1, 1]}, 2),  # uneven padding, three output blocks, 2 threads
    (1, 8, 12, {"pads": [1, 1, 1, 1]}, 1),  # one channel, stride 1
], ids=["3x3s2", "3x3s2-uneven-pads-2threads", "one-channel"])
def test_stem_reads_its_plain_input(cin, cout, size, attrs, threads):
    """A stem (fewer input channels than a block) feeding a depthwise-separable region becomes an entry
    ConvBlocked on the plain input: no BlockChannels of its input or of its output."""
    w = {"stem": f(cout, cin, 3, 3, scale=0.3), "dw": f(cout, 1, 3, 3), "pw": f(16, cout, 1, 1, scale=0.2)}
    nodes = [helper.make_node("Conv", ["x", "stem"], ["s"], **attrs), helper.make_node("Relu", ["s"], ["sr"]),
             helper.make_node("Conv", ["sr", "dw"], ["d"], group=cout, pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["d"], ["dr"]), helper.make_node("Conv", ["dr", "pw"], ["y"])]
    x = f(1, cin, size, size)
    m = model(nodes, {"x": x}, ["y"], w)
    graph = optimized(m)
    assert "BlockChannels" not in {n.op for n in graph.nodes}
    assert graph.nodes[0].op == "ConvBlocked" and graph.nodes[0].attrs["block"] == block_of()
    assert_close(run_graph(graph, {"x": x})[0], run_ort(m, {"x": x})[0], rtol=1e-4, atol=1e-4)
    check(m, {"x": x}, threads=threads)
