"""The fast convolution kernels (ConvTranspose by output phase, depthwise, dense with ragged rows), compiled,
against onnxruntime, and rows stored as whole vectors plus one shorter vector.

Shapes cover odd sizes, strides, padding, output padding, groups, several output-channel
tiles with a remainder, and fused activations after the kernel."""

import numpy as np
import pytest
from aic.compiler.pipeline import lower_model
from aic.frontend.onnx import load_model
from aic.ir.loop import Const, For, ForKind, Interleave, Store
from aic.ir.loop_tools import stmts_of
from onnx import helper

import aic
from tests.lower.lower_util import lower
from tests.lower.test_compiled_ops import check_compiled
from tests.onnx_util import assert_close, graph_model, run_ort

rng = np.random.default_rng(14)


def f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


CONV_TRANSPOSE = [
    # x shape, w shape [Cin, Cout/group, *k], attrs
    ((1, 16, 5, 7), (16, 40, 2, 2), {"strides": [2, 2]}),  # kernel == stride: one tap per phase
    ((1, 24, 8, 12), (24, 20, 2, 2), {"strides": [2, 2]}),  # and whole rows of positions: upsampling_product
    ((2, 16, 6, 6), (16, 8, 3, 3), {"strides": [3, 3]}),  # three phases a row, two images
    ((1, 8, 4, 8), (8, 6, 2, 4), {"strides": [2, 4]}),  # four phases a row
    # phases on the dense row kernel (phase_rows): 3x3 s2 with output padding, 4x4 s2, groups, stride 3
    ((1, 8, 6, 12), (8, 12, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}),
    ((1, 6, 10, 10), (6, 5, 4, 4), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 8, 9, 10), (8, 4, 3, 3), {"group": 2, "strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}),
    ((2, 4, 5, 9), (4, 3, 3, 3), {"strides": [3, 3]}),
    ((2, 8, 6, 5), (8, 12, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}),
    ((1, 6, 7, 7), (6, 5, 4, 4), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 4, 5, 6), (4, 3, 3, 2), {"strides": [3, 2], "pads": [0, 1, 2, 0]}),  # uneven pads, stride 3
    ((1, 4, 5, 6), (4, 3, 1, 1), {"strides": [2, 2]}),  # phases no tap reaches: bias only
    ((1, 6, 5, 5), (6, 4, 3, 3), {"group": 2, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 5, 6, 6), (5, 7, 3, 3), {"pads": [1, 1, 1, 1]}),  # stride 1
    ((1, 4, 9), (4, 6, 4), {"strides": [3]}),  # 1-D
    ((1, 3, 3, 4, 4), (3, 2, 2, 2, 2), {"strides": [2, 2, 2]}),  # 3-D
    ((1, 4, 5, 5), (4, 3, 3, 3), {"strides": [2, 2], "output_shape": [10, 10], "auto_pad": "SAME_UPPER"}),
    ((1, 4, 5, 5), (4, 3, 3, 3), {"dilations": [2, 2], "strides": [2, 2]}),  # dilated: the gather path
]


@pytest.mark.parametrize(("xs", "ws", "attrs"), CONV_TRANSPOSE, ids=[str(i) for i in range(len(CONV_TRANSPOSE))])
def test_conv_transpose(xs, ws, attrs):
    x, w = f(*xs), f(*ws)
    b = f(ws[1] * attrs.get("group", 1))
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["c"], **attrs), helper.make_node("Relu", ["c"], ["y"])]
    check_compiled(graph_model(nodes, {"x": x}, ["y"], {"w": w, "b": b}), {"x": x}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("kernel", "attrs"), [((2, 2), {"strides": [2, 2]}), ((2, 3), {"strides": [2, 3]}), (
    (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]})])
def test_upsampling_conv_transpose_stores_interleaved_vectors(kernel, attrs):
    """A ConvTranspose writes each output row as the phases of its vectors interleaved: no store narrower than a
    vector (the phase kernels stored one element per output channel)."""
    x, kw = f(1, 16, 8, 16), attrs["strides"][1]
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attrs)]
    program = lower(load_model(graph_model(nodes, {"x": x}, ["y"], {"w": f(16, 8, *kernel)})))
    stores = [s for k in program.kernels for s in stmts_of(k.body) if isinstance(s, Store) and s.buffer.name == "out0"]
    assert stores and all(isinstance(s.value, Interleave) and s.value.lanes == 8 * kw for s in stores), stores


DEPTHWISE = [
    # channels, spatial, kernel, attrs
    (6, (8, 8), (3, 3), {"pads": [1, 1, 1, 1]}),
    (5, (9, 7), (3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    (4, (7, 7), (7, 7), {"pads": [3, 3, 3, 3]}),  # whole row in one short vector
    (3, (28, 21), (5, 5), {"pads": [2, 2, 2, 2]}),  # whole vectors plus a shorter one
    (3, (11, 11), (5, 5), {"pads": [2, 2, 2, 2], "strides": [2, 2]}),
    (2, (10, 9), (3, 2), {"pads": [0, 1, 2, 0], "strides": [3, 2], "dilations": [2, 1]}),
    (3, (9, 8), (3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    (2, (10, 9), (3, 3), {"strides": [2, 2], "pads": [0, 0, 1, 0]}),  # VALID-like with an end pad
    (4, (19,), (5,), {"pads": [2, 2]}),  # 1-D
    (2, (5, 6, 7), (3, 3, 3), {"pads": [1, 1, 1, 1, 1, 1]}),  # 3-D
    (1, (258, 256), (3, 3), {"pads": [1, 1, 1, 1]}),  # a padded plane too large for the stack: global scratch
    (3, (30, 56), (7, 7), {"pads": [3, 3, 3, 3]}),  # steps of 4 rows and one of 2, rows of 2 vectors and a shorter
    (2, (13, 20), (3, 5), {"pads": [1, 2, 1, 2]}),  # a kernel taller than wide: rows fed by 1-3 input rows each
]


@pytest.mark.parametrize(("ch", "size", "k", "attrs"), DEPTHWISE, ids=[str(i) for i in range(len(DEPTHWISE))])
def test_depthwise(ch, size, k, attrs):
    """Depthwise conv + bias + SiLU (the epilogue runs on the kernel's vectors), batch 2."""
    x, w, b = f(2, ch, *size), f(ch, 1, *k), f(ch)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=ch, **attrs),
             helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", ["c", "s"], ["y"])]
    check_compiled(graph_model(nodes, {"x": x}, ["y"], {"w": w, "b": b}), {"x": x}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", [(30, 56), (14, 14)])
def test_depthwise_steps_in_avx2_code(size):
    """Steps of 4 rows by 16 lanes (two AVX2 vectors): 7x7 + bias + residual, whole and spilled rows."""
    x, w, b = f(2, 3, *size), f(3, 1, 7, 7), f(3)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=3, pads=[3, 3, 3, 3]),
             helper.make_node("Add", ["c", "x"], ["y"])]
    m = graph_model(nodes, {"x": x}, ["y"], {"w": w, "b": b})
    got = aic.compile(m, target="llvm -mattr=-avx512f", num_threads=1, cache=False).run(None, {"x": x})[0]
    assert_close(got, run_ort(m, {"x": x})[0], 1e-4, 1e-5)


@pytest.mark.parametrize("size", [(7, 7), (14, 14), (10, 13), (1, 7), (5, 12)])
def test_depthwise_rows_spill_into_the_next(size):
    """Rows that are not whole vectors are computed as whole vectors spilling into the next row (then
    overwritten); the last row of each plane does not spill. A residual Add reads the input at the same
    (spilled) positions; batch 2 and several channels, so a spill into another plane would show."""
    x, w, b = f(2, 5, *size), f(5, 1, 3, 3), f(5)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=5, pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "x"], ["y"])]
    check_compiled(graph_model(nodes, {"x": x}, ["y"], {"w": w, "b": b}), {"x": x}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scale", [(1, 1, 1, 7), (1, 1, 7, 1), (1, 3, 7, 7)], ids=["row", "column", "full"])
def test_depthwise_rows_do_not_spill_past_a_broadcast_operand(scale):
    """A fused operand broadcast along rows ([1, 1, 1, W]) would be read past its end by spilled lanes: those
    rows stay exact (the loop verifier rejects any read past a buffer)."""
    x, w, s = f(2, 3, 7, 7), f(3, 1, 3, 3), f(*scale)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], group=3, pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "s"], ["y"])]
    check_compiled(graph_model(nodes, {"x": x, "s": s}, ["y"], {"w": w}), {"x": x, "s": s}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("conv", [False, True], ids=["silu", "depthwise-silu"])
def test_rows_leave_no_scalar_remainder(conv):
    """28-wide rows on 8 lanes: three vectors and one of 4, for an elementwise kernel and a depthwise epilogue."""
    x = f(1, 3, 28, 28)
    nodes = [helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", ["c", "s"], ["y"])]
    weights = {}
    if conv:
        nodes.insert(0, helper.make_node("Conv", ["x", "w"], ["c"], group=3, pads=[1, 1, 1, 1]))
        weights = {"w": f(3, 1, 3, 3)}
    else:
        nodes.insert(0, helper.make_node("Identity", ["x"], ["c"]))
    program = lower(load_model(graph_model(nodes, {"x": x}, ["y"], weights)))
    outputs = [s for k in program.kernels for s in stmts_of(k.body) if isinstance(s, Store)
               and s.buffer.name.startswith("out")]
    assert outputs and all(s.value.lanes > 1 for s in outputs), [s.value.lanes for s in outputs]


DENSE = [
    # x shape, w shape, attrs: output rows that are not whole 8-lane vectors; shallow strided convolutions
    ((1, 40, 10, 10), (36, 40, 3, 3), {"pads": [1, 1, 1, 1]}),  # rows of 10 computed as two vectors
    ((1, 64, 7, 10), (40, 64, 3, 3), {"pads": [1, 1, 1, 1]}),  # deep: position x channel tiles, remainders
    ((1, 600, 5, 14), (12, 600, 1, 1), {}),  # deep 1x1, channels under two vectors: rows
    ((1, 24, 9, 14), (20, 24, 1, 1), {}),  # shallow 1x1: rows of 14
    ((1, 520, 6, 7), (32, 520, 1, 1), {}),  # deep 1x1, 7-wide rows: position x channel tiles
    ((1, 64, 5, 24), (24, 64, 3, 3), {"pads": [1, 1, 1, 1]}),  # deep, rows of 3 vectors: position x channel tiles
    ((1, 3, 37, 45), (16, 3, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # stem: rows over phases
    ((1, 3, 38, 35), (24, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),  # 7x7 stem (depth 147): the same
    ((2, 3, 20, 37), (20, 3, 3, 3), {"pads": [1, 1, 1, 1]}),  # shallow (depth 27), stride 1: channel tiles outermost
    ((2, 4, 30, 41), (13, 4, 3, 3), {"strides": [2, 3], "pads": [0, 1, 2, 0]}),  # uneven strides and pads
    ((1, 2, 40, 38), (8, 2, 5, 5), {"strides": [2, 2], "pads": [2, 2, 2, 2], "dilations": [2, 1]}),
    ((1, 64, 7, 7), (40, 64, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # weights >> input: packed strips
    ((1, 128, 30, 30), (240, 128, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # weights over 1 MiB: row blocks
    ((1, 48, 5, 4), (64, 24, 3, 2), {"strides": [2, 2], "pads": [1, 0, 1, 1], "group": 2, "dilations": [1, 2]}),
]


@pytest.mark.parametrize(("xs", "ws", "attrs"), DENSE, ids=[str(i) for i in range(len(DENSE))])
def test_dense_conv_ragged_rows(xs, ws, attrs):
    x, w, b = f(*xs), f(*ws) / np.float32(np.sqrt(np.prod(ws[1:]))), f(ws[0])
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], **attrs),
             helper.make_node("LeakyRelu", ["c"], ["y"], alpha=0.1)]
    check_compiled(graph_model(nodes, {"x": x}, ["y"], {"w": w, "b": b}), {"x": x}, rtol=1e-4, atol=1e-5)


def test_shallow_rows_write_plane_by_plane():
    """An image stem (depth 27) loops over output channel tiles outermost, fused with the output rows into the
    parallel loop: 2 whole tiles of 6 channels x 19 rows, then the last 4 channels."""
    x = f(1, 3, 37, 45)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])]
    program = lower(load_model(graph_model(nodes, {"x": x}, ["y"], {"w": f(16, 3, 3, 3)})))
    parallel = [s.extent for k in program.kernels for s in stmts_of(k.body)
                if isinstance(s, For) and s.kind == ForKind.PARALLEL]
    assert Const(2 * 19) in parallel, parallel


POINTWISE = [
    # x shape, w shape, group, fused operand shape (None: none): 1x1 stride-1 convolutions over flattened positions
    ((1, 24, 6, 6), (40, 24, 1, 1), 1, (1, 40, 6, 6)),  # 36 positions: 2 tiles of 16 and one of 4; residual
    ((1, 24, 7, 7), (40, 24, 1, 1), 1, (1, 40, 7, 7)),  # 49 positions (not a multiple of 4): tiles over strips
    ((2, 16, 14, 14), (40, 16, 1, 1), 1, None),  # 196 positions (planes not whole cache lines: packed columns)
    ((1, 16, 14, 14), (20, 16, 1, 1), 1, None),  # the same with few output channels: read in place
    ((1, 64, 3, 5), (256, 64, 1, 1), 1, (1, 256, 1, 1)),  # weights far larger than the input: channel tiles outer
    ((1, 12, 6, 9), (18, 4, 1, 1), 3, (1, 1, 1, 9)),  # groups; an operand broadcast along rows
    ((1, 8, 5, 12), (9, 8, 1, 1), 1, (1, 9, 5, 1)),  # an operand broadcast along columns
    ((2, 32, 5, 5), (32, 16, 1, 1), 2, (1, 32, 5, 5)),  # 25 positions: tiles over strips; batch 2, groups
    ((1, 16, 4, 8), (24, 16, 1, 1), 1, (1, 24, 4, 8)),  # planes of whole cache lines: read in place
    ((2, 16, 4, 4), (24, 8, 1, 1), 2, None),  # the same with groups
    ((1, 16, 13, 13), (24, 16, 1, 1), 1, (1, 24, 13, 13)),  # 169 positions, odd: 11 tiles of 16, the last of 9
    ((1, 16, 13, 13), (40, 16, 1, 1), 1, None),  # the same, more than 32 output channels: packed columns
    ((2, 8, 11, 11), (12, 8, 1, 1), 1, None),  # 121 positions, odd; batch 2
]
STRIDED_POINTWISE = [
    ((1, 24, 14, 14), (40, 24, 1, 1), {"strides": [2, 2]}),  # 49 positions, tiles over packed strips
    ((2, 16, 9, 11), (40, 16, 1, 1), {"strides": [2, 3]}),  # 20 positions: a subsampled copy, packed columns
    ((1, 16, 8, 32), (24, 16, 1, 1), {"strides": [2, 2]}),  # 64 positions: a subsampled copy read in place
]


@pytest.mark.parametrize(("xs", "ws", "group", "operand"), POINTWISE, ids=[str(i) for i in range(len(POINTWISE))])
def test_pointwise_conv_flat(xs, ws, group, operand):
    x, w, b = f(*xs), f(*ws) / np.float32(np.sqrt(ws[1])), f(ws[0])
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=group)]
    feeds = {"x": x}
    if operand is not None:
        feeds["r"] = f(*operand)
        nodes.append(helper.make_node("Add", ["c", "r"], ["a"]))
    nodes.append(helper.make_node("Relu", [nodes[-1].output[0]], ["y"]))
    check_compiled(graph_model(nodes, feeds, ["y"], {"w": w, "b": b}), feeds, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("xs", "ws", "attrs"), STRIDED_POINTWISE, ids=[str(i) for i in range(len(STRIDED_POINTWISE))])
def test_strided_pointwise_conv(xs, ws, attrs):
    x, w = f(*xs), f(*ws) / np.float32(np.sqrt(ws[1]))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], **attrs), helper.make_node("Relu", ["c"], ["y"])]
    check_compiled(graph_model(nodes, {"x": x}, ["y"], {"w": w}), {"x": x}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("xs", "ws", "attrs"), [
    ((32, 7, 7), (48, 32, 1, 1), {}),  # tiles over packed strips
    ((32, 14, 14), (48, 32, 1, 1), {"strides": [2, 2]}),  # flattened rows over the subsampled copy
    ((64, 8, 8), (40, 64, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # weight panels outer, packed
    ((128, 30, 30), (240, 128, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # blocks of packed rows
], ids=["7x7", "strided-1x1", "strided-3x3", "strided-3x3-blocks"])
def test_dense_conv_run_time_batch(xs, ws, attrs):
    """One artifact for batch 1..4: the packed copies and the loop order hold for a batch known at run time."""
    x = f(1, *xs)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], **attrs)]
    model = graph_model(nodes, {"x": x}, ["y"], {"w": f(*ws) / np.float32(np.sqrt(np.prod(ws[1:])))})
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    module = aic.compile(model, shapes={"batch": (1, 4, 1)}, num_threads=1, cache=False)
    for batch in (1, 3):
        feeds = {"x": f(batch, *xs)}
        np.testing.assert_allclose(module.run(None, feeds)[0], run_ort(model, feeds)[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("size", "widest"), [(13, 8), (7, 1)], ids=["13x13", "7x7"])
def test_pointwise_conv_odd_positions(size, widest):
    """An odd position count whose tiles of 16 are nearly full (13x13: 169 in 11 tiles) runs as rows over the
    flattened positions (vector stores); 7x7 (49 in 4 tiles) keeps position x channel tiles (scalar stores)."""
    x = f(1, 32, size, size)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])]
    program = lower(load_model(graph_model(nodes, {"x": x}, ["y"], {"w": f(48, 32, 1, 1)})))
    lanes = [s.value.lanes for k in program.kernels for s in stmts_of(k.body) if isinstance(s, Store)
             and s.buffer.name.startswith("out")]
    assert max(lanes) == widest, lanes


@pytest.mark.parametrize("silu, widest", [(False, 8), (True, 16)], ids=["relu", "silu"])
def test_pointwise_conv_stores_vectors(silu, widest):
    """A 1x1 convolution on a 6x6 map stores whole 8-lane vectors along the flattened positions (rows of 6
    would store 6-lane vectors); with a SiLU epilogue a tile's two vectors are one 16-lane vector."""
    x = f(1, 32, 6, 6)
    act = ([helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", ["c", "s"], ["y"])] if silu
           else [helper.make_node("Relu", ["c"], ["y"])])  # fmt: skip
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), *act]
    program = lower(load_model(graph_model(nodes, {"x": x}, ["y"], {"w": f(48, 32, 1, 1)})))
    lanes = [s.value.lanes for k in program.kernels for s in stmts_of(k.body) if isinstance(s, Store)
             and s.buffer.name.startswith("out")]
    assert max(lanes) == widest and 6 not in lanes, lanes


MAX_POOL = [
    ((1, 4, 10, 10), {"kernel_shape": [5, 5], "pads": [2, 2, 2, 2]}),  # SPPF
    ((1, 3, 11, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 9, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ((1, 2, 12, 11), {"kernel_shape": [3, 2], "dilations": [2, 1], "strides": [1, 2], "pads": [2, 0, 1, 1]}),
    ((1, 2, 8, 9), {"kernel_shape": [2, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((2, 3, 21), {"kernel_shape": [4], "strides": [3], "pads": [1, 2]}),  # 1-D
    ((1, 2, 5, 6, 7), {"kernel_shape": [3, 3, 3], "pads": [1, 1, 1, 1, 1, 1]}),  # 3-D
]


@pytest.mark.parametrize(("xs", "attrs"), MAX_POOL, ids=[str(i) for i in range(len(MAX_POOL))])
def test_max_pool(xs, attrs):
    x = f(*xs) - 3  # mostly negative: padding must not win
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], **attrs)]
    check_compiled(graph_model(nodes, {"x": x}, ["y"], {}), {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize(("cpu", "tile"), [("znver5", "micro_kernel(7, 32)"), ("haswell", "micro_kernel(6, 16)")])
def test_seven_position_tiles_on_maps_of_sevens(cpu, tile):
    """Position x channel tiles on a 7x7 map (49 positions) are 7 positions deep with 32 vector registers, so no
    strip ends on a tile of one position; AVX2's 16 registers keep 6. Numerics against onnxruntime on this host."""
    x = f(1, 64, 7, 7)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1] * 4), helper.make_node("Relu", ["c"], ["y"])]
    model = graph_model(nodes, {"x": x}, ["y"], {"w": f(48, 64, 3, 3), "b": f(48)})
    kernel = next(k for k in lower_model(model, f"llvm -mcpu={cpu}").kernels if "conv" in k.name)
    assert tile in "; ".join(str(r) for r in kernel.attrs["schedule"])
    check_compiled(model, {"x": x}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("out_channels", [30, 40])
def test_last_column_tile_pairs_channel_tiles(out_channels):
    """A 1x1 convolution on 14x14 (196 positions: six tiles of 32 and one of 4) computes its last, one-vector column
    tile 12 output channels at a time (12 accumulators where 6 left the FMA latency uncovered), then a single tile of
    6 and the short rest; against onnxruntime."""
    x = f(1, 64, 14, 14)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]), helper.make_node("Relu", ["c"], ["y"])]
    model = graph_model(nodes, {"x": x}, ["y"], {"w": f(out_channels, 64, 1, 1), "b": f(out_channels)})
    kernel = next(k for k in lower_model(model, "llvm -mcpu=znver5").kernels if "conv" in k.name)
    row_loops = {int(s.extent.value) for s in stmts_of(kernel.body) if isinstance(s, For)
                 and s.var.name.startswith("r") and isinstance(s.extent, Const)}
    assert 12 in row_loops, row_loops
    check_compiled(model, {"x": x}, rtol=1e-4, atol=1e-5)
