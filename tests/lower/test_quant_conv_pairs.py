"""ConvInteger on AVX2 as `dot4sat` (`vpmaddubsw`, saturating int16 pair sums) on weights split so that no pair
of consecutive input channels saturates, plus the sparse fixes: exact int32 results against onnx's reference
with 7-bit weights (onnxruntime's reduce_range: no fix) and with planted saturating pairs against activations
of 255, on both tile shapes (row and position tiles, strided, padded, grouped, int8 and uint8 operands), on
the host, without AVX2 and in the loop evaluator; full-range weights keep the exact int16 pairs (`dotw`)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from aic.codegen.llvm import kernel_llvm
from aic.compiler.lower.quant_conv import pairs_safe
from aic.compiler.program import build_program
from aic.frontend.onnx import load_model
from aic.ir.loop_eval import run_program
from aic.ir.loop_printer import kernel_text
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

import aic
from tests.lower.test_quant_conv import conv_integer_model

rng = np.random.default_rng(13)
AVX2 = "llvm -mtriple=x86_64-unknown-linux-gnu -mcpu=haswell"


def _case(x_shape, w_shape, x_type, w_type, attrs, zw=None, planted=False):
    """A ConvInteger with 7-bit weights (|w - zw| <= 64) and full-range activations, some of them 255; with
    `planted`, three pairs of input channels that saturate int16 against 255 (fixed by the sparse pass)."""
    w = rng.integers(-64, 64, size=w_shape)
    if planted:
        first, last, middle = (0,) * (len(w_shape) - 2), (-1,) * (len(w_shape) - 2), tuple(k // 2 for k in w_shape[2:])
        pair = (w_shape[1] - 2) & ~1
        w[(0, slice(0, 2), *first)], w[(-1, slice(pair, pair + 2), *last)] = (127, 100), (-128, -60)
        w[(w_shape[0] // 2, slice(0, 2), *middle)] = (90, 90)
    w = w + (0 if w_type == np.int8 else 128)
    x = rng.integers(*((0, 256) if x_type == np.uint8 else (-128, 128)), size=x_shape).astype(x_type)
    x.reshape(-1)[: x.size // 3] = np.iinfo(x_type).max
    model = conv_integer_model(x_shape, w.astype(w_type), x_type, attrs, zw)
    feeds = {"x": x, "zx": np.asarray(3, x_type)}
    return model, feeds, ReferenceEvaluator(model).run(None, feeds)[0]


def _calls(model: onnx.ModelProto, fn: str, target: str = AVX2) -> int:
    return sum(kernel_text(k).count(f" = {fn}(") for k in build_program(load_model(model), target).kernels)


CASES = [  # x shape, w shape, activation type, weight type, attributes, weight zero point
    ((1, 8, 9, 9), (20, 8, 3, 3), np.uint8, np.int8, {"pads": [1, 1, 1, 1]}, None),  # row tiles, tails
    ((2, 5, 7, 6), (18, 5, 3, 3), np.int8, np.int8, {"pads": [1, 0, 2, 1], "strides": [2, 1]}, None),  # odd icg
    ((1, 32, 6, 6), (32, 32, 1, 1), np.uint8, np.uint8, {}, 128),  # 1x1, uint8 weights (zero point 128)
    ((1, 8, 8, 8), (24, 4, 3, 3), np.uint8, np.int8, {"group": 2, "pads": [1, 1, 1, 1]}, 0),
    ((1, 64, 7, 7), (20, 64, 3, 3), np.int8, np.int8, {"pads": [1, 1, 1, 1]}, None),  # position tiles
    ((2, 61, 9, 8), (12, 61, 3, 3), np.uint8, np.int8, {"pads": [1, 1, 0, 1], "strides": [2, 2]}, None),
]


@pytest.mark.parametrize("target", ["llvm", "llvm -mattr=-avx2"])
@pytest.mark.parametrize("x_shape,w_shape,x_type,w_type,attrs,zw", CASES)
@pytest.mark.parametrize("planted", [False, True])
def test_exact_with_seven_bit_weights(x_shape, w_shape, x_type, w_type, attrs, zw, planted, target):
    model, feeds, exact = _case(x_shape, w_shape, x_type, w_type, attrs, zw, planted)
    assert _calls(model, "dot4sat") > 0 and _calls(model, "dotw") == 0
    weights = numpy_helper.to_array(model.graph.initializer[0]).astype(np.int32) - (w_type == np.uint8) * 128
    assert pairs_safe(weights) != planted
    np.testing.assert_array_equal(aic.compile(model, target=target).run(None, feeds)[0], exact)


def test_rendering_and_loop_evaluator():
    model, feeds, exact = _case((1, 8, 6, 6), (16, 8, 3, 3), np.uint8, np.int8, {"pads": [1, 1, 1, 1]}, planted=True)
    program = build_program(load_model(model), AVX2)
    kernel = next(k for k in program.kernels if " = dot4sat(" in kernel_text(k))
    assert "llvm.x86.avx2.pmadd.ub.sw" in kernel_llvm(kernel, AVX2)
    np.testing.assert_array_equal(run_program(program, feeds)[0], exact)


def test_pair_bounds_and_full_range_weights_keep_int16_pairs():
    model, feeds, _ = _case((1, 8, 6, 6), (16, 8, 3, 3), np.uint8, np.int8, {"pads": [1, 1, 1, 1]})
    w = numpy_helper.to_array(model.graph.initializer[0]).copy()
    assert pairs_safe(w.astype(np.int32))
    w[5, 2:4, 1, 1] = (100, 29)  # 255 * 129 > 32767
    assert not pairs_safe(w.astype(np.int32))
    w[5, 2:4, 1, 1] = (29, 99)
    assert pairs_safe(w.astype(np.int32))
    w[5, 0:4, 1, 1] = (0, 127, 127, 0)  # channels 1 and 2 belong to different pairs
    assert pairs_safe(w.astype(np.int32))
    w[5, 2:4, 1, 1] = (-64, -65)
    assert not pairs_safe(w.astype(np.int32))
    w = rng.integers(-128, 128, w.shape).astype(np.int8)  # full range: a quarter of the pairs would need a fix
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "w"))
    assert _calls(model, "dotw") > 0 and _calls(model, "dot4sat") == 0
    exact = ReferenceEvaluator(model).run(None, feeds)[0]
    np.testing.assert_array_equal(aic.compile(model).run(None, feeds)[0], exact)


def test_position_tiles_add_their_fixes_in_the_registers():
    """Position tiles: the fixes are a second `dot4sat` product over the plane's lanes in the tile (no pass, no
    buffer), exact in the loop evaluator and on the host."""
    model, feeds, exact = _case((1, 64, 3, 3), (8, 64, 3, 3), np.uint8, np.int8, {"pads": [1, 1, 1, 1]}, planted=True)
    program = build_program(load_model(model), AVX2)
    (kernel,) = [k for k in program.kernels if " = dot4sat(" in kernel_text(k)]
    text = kernel_text(kernel)  # two products per tile shape (whole tiles, the last partial one), no pass
    assert text.count(" = dot4sat(") == 4 and " = dotw(" not in text and "fw0" in text and "for xf" not in text
    np.testing.assert_array_equal(run_program(program, feeds)[0], exact)
    np.testing.assert_array_equal(aic.compile(model).run(None, feeds)[0], exact)
