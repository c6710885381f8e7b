"""Weight-streaming products: where their panels are cut into K blocks, and their results either way."""

import numpy as np
import pytest
from aic.compiler.lower.contraction import row_tile, weights_stay_in_l2
from aic.compiler.lower.core import idx
from aic.compiler.lower.streamed import WEIGHTS_AHEAD, prefetch_steps, row_block, stream_plan, weights_ahead
from aic.ir.dtypes import DType
from aic.ir.loop import Buffer, Load, Prefetch, Scope
from aic.ir.loop_tools import static_int, stmts_of
from aic.ir.schedule import MicroKernel
from onnx import TensorProto, helper, numpy_helper

import aic


@pytest.mark.parametrize(("m", "k", "width", "plan"), [
    (64, 768, 16, (768, 768)),  # GPT-2 projections: the whole panel (a and two panels fit L2)
    (128, 768, 16, (768, 768)),  # BERT projections: 384 KiB of a + 2 x 48 KiB of panel still fit
    (32, 1024, 24, (1024, 128)),  # few rows: blocks of at most 16 KiB (L1)
    (64, 1536, 16, (1536, 256)),  # a and two panels over L2: L1 blocks
    (64, 3072, 16, (3072, 256)),  # 768 KiB of a, 64 rows: whole (up to 2 MiB with few rows), in L1 blocks
    (128, 3072, 16, (3072, 256)),  # BERT's feed-forward output: 1.5 MiB of a, whole
    (96, 8192, 16, (512, 512)),  # 3 MiB of a: spans of 512 columns (192 KiB of a), sums of all panels between
    (257, 1024, 16, None),  # 1 MiB of a over more than STREAMED_ROWS rows: the plain panel loop
    (512, 1024, 16, None),  # a span of 256 KiB would be under MIN_SPAN: the plain panel loop
])
def test_k_spans_and_blocks(m, k, width, plan):
    assert stream_plan(m, k, width) == plan


@pytest.mark.parametrize(("m", "k", "block"), [
    (500, 384, 252),  # Whisper-like (750 KiB of a): two blocks that stay in L2, 252 + 248 rows
    (1500, 384, 300),  # Whisper-tiny's 1500 positions: five blocks (a block and two panels fit L2)
    (500, 1536, 48),  # 48 rows: a block of 288 KiB and two panels of 96 KiB fit L2, not cut in K blocks
    (300, 2000, 60),  # no block of 48 rows leaves room for two panels: blocks of STREAMED_A_BYTES, cut in K
    (128, 768, None),  # a fits whole (it streams)
])
def test_row_blocks(m, k, block):
    assert row_block(m, k, 6, 16) == block


@pytest.mark.parametrize(("width", "strips", "klen", "every"), [
    (24, 49, 512, 32),  # the Mixer's 196 rows in 4 x 24 tiles: a line of the share lasts 32.7 steps
    (16, 22, 768, 16),  # BERT's 128 rows in 6 x 16 tiles: 22 steps
    (24, 16, 768, 8),  # GPT-2's 64 rows: 10.7 steps
    (24, 8, 128, 1),  # the MLP's 32 rows in K blocks of 128: 5.3 steps, under MIN_PREFETCH_GROUP
    (16, 86, 196, 1),  # 196 steps: no power of two from 16 divides them
])
def test_prefetch_steps(width, strips, klen, every):
    assert prefetch_steps(width, strips, klen) == every


@pytest.mark.parametrize(("floats", "every", "lines"), [
    (6, 2, 1),  # a 6-row panel: 12 floats per prefetch, so every line of the stream is asked for
    (12, 1, 1),  # a 12-row tile reads 12 floats of its panel a step
    (16, 1, 1),  # a 16-row Winograd panel: a line a step
    (32, 1, 2),  # two vectors of weights a step: both lines
])
def test_weights_ahead(floats, every, lines):
    """Each k step (or each group of `every`) asks for the lines WEIGHTS_AHEAD floats past its reads; the last
    steps' prefetches stay inside the buffer."""
    weights = Buffer("w", DType.float32, 4096, Scope.GLOBAL)
    prefetch, got = weights_ahead(lambda kk: [Load(weights, kk[0])], floats)
    assert got == every

    def fetched(at: int) -> list[int | None]:
        return [static_int(s.index) for s in stmts_of(prefetch([idx(at)])) if isinstance(s, Prefetch)]

    assert fetched(100) == [100 + WEIGHTS_AHEAD + 16 * line for line in range(lines)]
    assert fetched(4000) == [4095] * lines


@pytest.mark.parametrize(("m", "tile"), [
    (7, (4, 3)),  # 6 + 1 rows: the 1-row strip is latency-bound; 4 + 3 takes fewer cycles
    (32, (4, 3)),  # 5 x 6 + 2 against 8 x 4
    (64, (4, 3)),  # a tie on cycles, but 6 x 2 would end on a 4-row strip (10 x 6 + 4 against 16 x 4)
    (28, (4, 3)),  # the same tie (4 x 6 + 4 against 7 x 4)
    (48, (6, 2)),  # a tie with whole strips both ways
    (96, (6, 2)),
    (128, (6, 2)),  # 21 x 6 + 2 against 32 x 4: within 5%
    (1500, (6, 2)),  # a over STREAMED_A_BYTES: not a streaming product
])
def test_row_tile(m, tile):
    rows, vectors = tile
    assert row_tile(m, 768, 8) == MicroKernel(rows, vectors * 8)


@pytest.mark.parametrize(("n", "tile"), [(768, (4, 3)), (50257, (4, 3)), (32, (6, 2)), (512, (6, 2))])
def test_row_tile_ties_count_padded_columns(n, tile):
    # a tie (64 rows) takes 3-vector panels only if they pad n to at most 1% more columns (32 -> 48: no)
    rows, vectors = tile
    assert row_tile(64, 768, 8, n) == MicroKernel(rows, vectors * 8)


def _gemm(m: int, k: int, n: int, rng: np.random.Generator):
    w = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"])], "streamed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    return model, w.astype(np.float64), bias.astype(np.float64)


@pytest.mark.parametrize(("m", "k", "n", "rows_outer"), [
    (3136, 96, 384, True),  # ConvNeXt's expansion at 56x56: 144 KiB of weights, a (1.2 MB) over L2
    (3136, 384, 96, True),
    (784, 192, 768, False),  # 576 KiB of weights: over half of L2
    (128, 768, 768, False),  # a streams (stream_plan): the weight panels are the outer loop
])
def test_rows_outer_when_weights_stay_in_l2(m, k, n, rows_outer):
    assert weights_stay_in_l2(m, n, k, 16) == rows_outer


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("m", "k", "n"), [
    (1501, 96, 45),  # rows outer: every 6-row strip over all weight panels (a 13-column tail panel)

    (28, 200, 37),  # 4 x 24 tiles: 7 strips of 4 rows, a 13-column tail panel
    (50, 200, 37),  # whole panels, prefetched a panel ahead; a 5-column tail panel, a 2-row tail strip
    (50, 1600, 37),  # the same rows with 8 K blocks of 200 (a and two panels over L2)
    (48, 2816, 37),  # one span (528 KiB of a, few rows) in L1-sized K blocks
    (96, 8192, 37),  # 16 K spans of 512 (3 MiB of a), sums of all panels between spans
    (200, 256, 40),  # 34 strips of 6 rows: one prefetch every 32 k steps
    (400, 400, 200),  # row blocks of 204 + 196 rows (a 640 KiB), 12 panels and an 8-column tail
    (300, 2000, 37),  # row blocks of 60 rows, each panel in K blocks of 250
])
def test_streamed_products_match_float64(m, k, n, threads):
    rng = np.random.default_rng(m + k)
    model, w, bias = _gemm(m, k, n, rng)
    x = rng.standard_normal((m, k)).astype(np.float32)
    got = aic.compile(model, num_threads=threads, cache=False).run(None, {"x": x})[0]
    want = x.astype(np.float64) @ w + bias
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("threads", [1, 2])
def test_rows_outer_product_over_nhwc_with_epilogue(threads):
    # [1, 30, 50, 96] x [96, 40] + bias + residual: one product over 1500 rows (576 KiB of a, over L2), rows outer
    rng = np.random.default_rng(5)
    w, bias = rng.standard_normal((96, 40)).astype(np.float32), rng.standard_normal(40).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["z"]),
             helper.make_node("Add", ["z", "r"], ["y"])]
    graph = helper.make_graph(
        nodes, "nhwc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 30, 50, 96]),
                        helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 30, 50, 40])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 30, 50, 40])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    x = rng.standard_normal((1, 30, 50, 96)).astype(np.float32)
    r = rng.standard_normal((1, 30, 50, 40)).astype(np.float32)
    got = aic.compile(model, num_threads=threads, cache=False).run(None, {"x": x, "r": r})[0]
    want = x.astype(np.float64) @ w + bias + r
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
