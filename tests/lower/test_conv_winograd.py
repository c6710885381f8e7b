"""Winograd F(4,3) convolutions (compiler/lower/conv_winograd.py): the derived transforms are exact, the
compiled kernel matches onnxruntime on odd sizes, padding, batches and fused epilogues, and the rule and
the `Winograd` directive pick which convolutions take it."""

import numpy as np
import pytest
from aic.codegen.llvm import kernel_llvm
from aic.compiler.lower.conv_winograd import block_tiles, transform_weights, winograd_matrices
from aic.compiler.pipeline import lower_model
from aic.ir.loop_printer import kernel_text
from aic.ir.schedule import MicroKernel, ScheduleError, Winograd
from onnx import helper

import aic
from tests.onnx_util import assert_close, graph_model, run_ort

rng = np.random.default_rng(43)


def f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("m", [2, 4])
def test_transforms_compute_correlation(m):
    at, g, bt = winograd_matrices(m, 3)
    d, w = rng.standard_normal(m + 2), rng.standard_normal(3)
    np.testing.assert_allclose(at @ ((g @ w) * (bt @ d)), np.correlate(d, w, "valid"), rtol=1e-12, atol=1e-12)
    # 2-D, through the weight transform as the kernel uses it
    d2, w2 = rng.standard_normal((6, 6)), rng.standard_normal((1, 1, 3, 3))
    at, _, bt = winograd_matrices()
    y = at @ (transform_weights(w2).reshape(6, 6) * (bt @ d2 @ bt.T)) @ at.T
    direct = np.array([[np.sum(d2[i:i + 3, j:j + 3] * w2[0, 0]) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(y, direct, rtol=1e-12, atol=1e-12)


def conv_model(xs, co, pads, bias=True, act=None, residual=False, **attrs):
    x, w = f(*xs), f(co, xs[1], 3, 3) / np.float32(np.sqrt(9 * xs[1]))
    weights = {"w": w, **({"b": f(co)} if bias else {})}
    nodes = [helper.make_node("Conv", ["x", *weights], ["c"], pads=[pads] * 4, **attrs)]
    inputs, last = {"x": x}, "c"
    if residual:
        oh, ow = xs[2] + 2 * pads - 2, xs[3] + 2 * pads - 2
        inputs["r"] = f(xs[0], co, oh, ow)
        nodes.append(helper.make_node("Add", ["c", "r"], ["s"]))
        last = "s"
    if act:
        nodes.append(helper.make_node(act, [last], ["y"], **({"alpha": 0.1} if act == "LeakyRelu" else {})))
        last = "y"
    return graph_model(nodes, inputs, [last], weights), inputs


CASES = [
    # x shape, output channels, pads, bias, activation, residual add
    ((1, 32, 8, 8), 32, 1, True, "Relu", False),  # the smallest map the rule takes
    ((2, 40, 13, 11), 37, 1, True, "Relu", True),  # batch 2, rows and columns not multiples of 4, channel remainder
    ((1, 32, 14, 10), 48, 0, False, None, False),  # no padding, no bias: 12x8 output
    ((1, 33, 21, 18), 35, 1, True, "LeakyRelu", True),  # several blocks of tiles, the last partial
    ((1, 32, 9, 30), 32, 1, False, None, True),  # wide rows: three blocks per image, a one-row last tile
]


@pytest.mark.parametrize(("xs", "co", "pads", "bias", "act", "residual"), CASES,
                         ids=[str(i) for i in range(len(CASES))])
def test_winograd_conv_matches_onnxruntime(xs, co, pads, bias, act, residual):
    model, inputs = conv_model(xs, co, pads, bias, act, residual)
    assert "winograd(on)" in schedule_of(model)
    expected = run_ort(model, inputs)[0]
    actual = aic.compile(model, num_threads=1, cache=False).run(None, inputs)[0]
    assert_close(actual, expected, 1e-4, 2e-5)
    direct = aic.compile(model, num_threads=1, schedules={kernel_of(model): [Winograd(False)]}).run(None, inputs)[0]
    assert_close(direct, expected, 1e-4, 1e-5)


def kernel_of(model) -> str:
    return next(k.name for k in lower_model(model).kernels if "conv" in k.name)


def schedule_of(model) -> str:
    kernel = next(k for k in lower_model(model).kernels if "conv" in k.name)
    return "; ".join(str(r) for r in kernel.attrs["schedule"])


RULE = [
    ((1, 64, 56, 56), 64, {}, True),
    ((1, 16, 32, 32), 32, {}, True),
    ((1, 16, 32, 32), 16, {}, False),  # too few channels in and out
    ((1, 8, 32, 32), 128, {}, False),  # shallow input
    ((1, 64, 32, 32), 8, {}, False),  # few output channels
    ((1, 64, 7, 7), 64, {}, False),  # map below 8x8
    ((1, 64, 32, 32), 64, {"strides": [2, 2]}, False),
    ((1, 64, 32, 32), 64, {"dilations": [2, 2]}, False),
    ((1, 64, 32, 32), 64, {"group": 2}, False),
]


@pytest.mark.parametrize(("xs", "co", "attrs", "taken"), RULE, ids=[str(i) for i in range(len(RULE))])
def test_rule(xs, co, attrs, taken):
    x, w = f(*xs), f(co, xs[1] // attrs.get("group", 1), 3, 3)
    model = graph_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4, **attrs)], {"x": x}, ["y"],
                         {"w": w})
    assert ("winograd(on)" in schedule_of(model)) == taken


@pytest.mark.parametrize(("cpu", "cout", "rows"), [("znver5", 256, 16), ("znver5", 40, 14), ("znver4", 256, 16),
                                                   ("haswell", 256, 6)])
def test_products_cover_the_fma_latency(cpu, cout, rows):
    """The 36 products' register tile is 16 or 14 output channels (whichever pads fewer) by one vector of 16 tiles
    with AVX-512, 6 by two vectors of 8 with AVX2: 12-16 independent accumulators, where 6 of one vector left the
    products at a quarter of the peak. The transformed weights are packed for that tile: [36, output channel
    tiles, C_in, rows]."""
    x, w = f(1, 256, 14, 14), f(cout, 256, 3, 3)
    model = graph_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4)], {"x": x}, ["y"], {"w": w})
    kernel = next(k for k in lower_model(model, f"llvm -mcpu={cpu}").kernels if "conv" in k.name)
    assert "winograd(on)" in "; ".join(str(r) for r in kernel.attrs["schedule"])
    sizes = [int(b.size) for b in kernel.params if b.name.startswith("u")]
    assert sizes == [36 * -(-cout // rows) * rows * 256], sizes


def test_directives():
    model, inputs = conv_model((1, 8, 10, 10), 8, 1)  # below the rule's channels: forced on
    expected = run_ort(model, inputs)[0]
    name = kernel_of(model)
    forced = aic.compile(model, num_threads=1, schedules={name: [Winograd(True)]}).run(None, inputs)[0]
    assert_close(forced, expected, 1e-4, 2e-5)
    model, _ = conv_model((1, 32, 10, 10), 32, 1)  # a direct tiling given: the direct kernel
    assert "winograd" not in "; ".join(str(r) for r in lower_model(model, schedules={kernel_of(model): [
        MicroKernel(4, 8)]}).kernels[0].attrs["schedule"])
    strided, _ = conv_model((1, 32, 10, 10), 32, 1, strides=[2, 2])
    with pytest.raises(ScheduleError, match="winograd"):
        lower_model(strided, schedules={kernel_of(strided): [Winograd(True)]})


def test_run_time_batch():
    """One artifact for batch 1..4: the blocks of tiles of every image, the batch known at run time."""
    model, _ = conv_model((1, 32, 12, 12), 32, 1, act="Relu")
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    assert "winograd(on)" in "; ".join(str(r) for r in lower_model(model, shapes={"batch": (1, 4, 1)}).kernels[
        0].attrs["schedule"])
    module = aic.compile(model, shapes={"batch": (1, 4, 1)}, num_threads=1, cache=False)
    for batch in (1, 3):
        feeds = {"x": f(batch, 32, 12, 12)}
        assert_close(module.run(None, feeds)[0], run_ort(model, feeds)[0], 1e-4, 2e-5)


def test_input_copy_stays_in_small_blocks():
    """The phase-split copies of a small map are not unrolled into one huge basic block (its code generation
    took seconds: 64 channels at 32x32, the far copy included, had blocks of ~1000 stores)."""
    model, _ = conv_model((1, 64, 32, 32), 64, 1)
    kernel = lower_model(model).kernels[0]
    code = kernel_llvm(kernel).split("\ndefine ")
    copies = [fn for fn in code if ".par" in fn.split("(")[0] and "fmuladd" not in fn and "fma" not in fn]
    assert copies
    largest = max(block.count(" store ") for fn in copies for block in fn.split("\n\n"))
    assert largest < 300, largest


def test_one_block_phases_are_parallel():
    """A map whose tiles make one block (28x28: 56 tiles) splits its three phases among threads instead: the
    input transform over input channels, the products over the 36 taps, the output transform over output
    channels (its stack buffer allocated per channel, so the loop stays parallel)."""
    model, _ = conv_model((1, 128, 28, 28), 128, 1, act="Relu")
    text = kernel_text(lower_model(model).kernels[0])
    assert [line.split()[2] for line in text.splitlines() if "for parallel" in line][1:] == ["wi0", "wx0", "wv0"]


def test_blocks_prefer_whole_column_tiles():
    """Of the block sizes computing the fewest tiles for two threads, one of whole 16-tile column tiles (no 6 x 8
    tail): 272 tiles (64 x 64 channels at 64x64) in 17 blocks of 16, not 12 of 24; 210 (56x56) stays 16."""
    assert block_tiles(64, 272) == 16
    assert block_tiles(64, 210) == 16
    assert block_tiles(32, 420) == 24  # fewer tiles computed beats the tail (432 against 448)
