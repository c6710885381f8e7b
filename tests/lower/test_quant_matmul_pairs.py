"""MatMulInteger on AVX2 as `dot4sat` (`vpmaddubsw`, saturating int16 pair sums) on saturation-free weights
plus the exact sparse fixes: int32 results equal to an int64 numpy reference on weights that contain
saturating pairs (against activations of 255, which would saturate them), on reduce_range weights (no
fixes), on the host, without AVX2 (the saturating definition in plain LLVM IR) and in the loop evaluator."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from aic.codegen.llvm import kernel_llvm
from aic.compiler.lower.quant_matmul import PAIR_MAX, saturation_free
from aic.compiler.program import build_program
from aic.frontend.onnx import load_model
from aic.ir.loop_eval import run_program
from aic.ir.loop_printer import kernel_text
from onnx import TensorProto, helper, numpy_helper

import aic

rng = np.random.default_rng(11)
ONNX_TYPE = {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8}
AVX2 = "llvm -mtriple=x86_64-unknown-linux-gnu -mcpu=haswell"


def planted(k: int, n: int, w_type: type = np.int8) -> np.ndarray:
    """Weights of a symmetric quantization (|w| mostly < 64) with a few pairs that saturate int16 against
    uint8 255: (127, 127), (-128, -128), (100, 29), (-60, -70) and one in the last (odd) pair of K."""
    w = np.clip(np.rint(rng.standard_normal((k, n)) * 20), -128, 127).astype(np.int32)
    for (row, col), pair in zip([(0, 0), (2, n - 1), (k // 2 & ~1, 5), (10, 17)],
                                [(127, 127), (-128, -128), (100, 29), (-60, -70)]):
        w[row:row + 2, col] = pair
    w[k - 2 - k % 2:k - k % 2, 3] = (120, 90)
    if w_type == np.uint8:
        return (w + 128).astype(np.uint8)
    return w.astype(np.int8)


def _model(a_shape: tuple[int, ...], w: np.ndarray, a_type: type, zb: int | None) -> onnx.ModelProto:
    inits, names = [numpy_helper.from_array(w, "w")], ["a", "w", "za"]
    if zb is not None:
        inits.append(numpy_helper.from_array(np.asarray(zb, w.dtype), "zb"))
        names.append("zb")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", names, ["y"])], "qmm",
        [helper.make_tensor_value_info("a", ONNX_TYPE[a_type], list(a_shape)),
         helper.make_tensor_value_info("za", ONNX_TYPE[a_type], [])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [*a_shape[:-1], w.shape[1]])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _feeds(a_shape: tuple[int, ...], a_type: type) -> dict[str, np.ndarray]:
    lo, hi = (0, 256) if a_type == np.uint8 else (-128, 128)
    a = rng.integers(lo, hi, a_shape).astype(a_type)
    a.reshape(-1, a_shape[-1])[0] = hi - 1  # a row of the largest activations: saturates every planted pair
    return {"a": a, "za": np.asarray(rng.integers(lo, hi), a_type)}


def _exact(feeds: dict[str, np.ndarray], w: np.ndarray, zb: int | None) -> np.ndarray:
    centred = feeds["a"].astype(np.int64) - int(feeds["za"])
    return (centred @ (w.astype(np.int64) - (zb or 0))).astype(np.int32)


CASES = [  # activations shape, K, N, activation type, weight type, weight zero point
    ((6, 255), 255, 40, np.uint8, np.int8, None),  # K not a multiple of 4, N and row tails
    ((2, 4, 256), 256, 33, np.int8, np.int8, None),  # int8 activations, a batch dim
    ((5, 254), 254, 24, np.uint8, np.uint8, 131),  # uint8 weights, a zero point: row sums too
]


def test_split_restores_the_weights_and_bounds_every_pair():
    w = planted(255, 40).astype(np.int32)
    safe, (at_k, at_n, delta) = saturation_free(w.astype(np.int8))
    restored = safe.astype(np.int32)
    np.add.at(restored, (at_k, at_n), delta)
    np.testing.assert_array_equal(restored, w)
    assert len(delta) == 5  # one fix per offending pair
    pairs = np.vstack([safe.astype(np.int32), np.zeros((1, 40), np.int32)]).reshape(128, 2, 40)
    assert (np.maximum(pairs, 0).sum(axis=1) <= PAIR_MAX).all()
    assert (np.maximum(-pairs, 0).sum(axis=1) <= PAIR_MAX).all()


@pytest.mark.parametrize("target", ["llvm", "llvm -mattr=-avx2"])
@pytest.mark.parametrize("a_shape,k,n,a_type,w_type,zb", CASES)
def test_exact_with_saturating_pairs(a_shape, k, n, a_type, w_type, zb, target):
    w = planted(k, n, w_type)
    model, feeds = _model(a_shape, w, a_type, zb), _feeds(a_shape, a_type)
    program = build_program(load_model(model), AVX2)
    assert any(" = dot4sat(" in kernel_text(kern) for kern in program.kernels)
    shifted = w.astype(np.int64) - (128 if w_type == np.uint8 else 0)
    assert np.any(255 * np.maximum(shifted[:-1:2], 0) + 255 * np.maximum(shifted[1::2], 0) > 32767)
    np.testing.assert_array_equal(aic.compile(model, target=target).run(None, feeds)[0], _exact(feeds, w, zb))


def test_reduce_range_weights_need_no_fix_and_the_evaluator_agrees():
    w = rng.integers(-64, 64, (96, 24)).astype(np.int8)  # 7-bit weights (onnxruntime's reduce_range)
    assert len(saturation_free(w)[1][2]) == 0
    model, feeds = _model((5, 96), w, np.uint8, None), _feeds((5, 96), np.uint8)
    program = build_program(load_model(model), AVX2)
    kernel = next(kern for kern in program.kernels if " = dot4sat(" in kernel_text(kern))
    text = kernel_llvm(kernel, AVX2)
    assert "llvm.x86.avx2.pmadd.ub.sw" in text and "llvm.x86.avx2.pmadd.wd" in text
    np.testing.assert_array_equal(aic.compile(model).run(None, feeds)[0], _exact(feeds, w, None))
    w = planted(256, 24)  # 5 fixes for 6144 weights: the fixes' sums in the evaluator too
    model, feeds = _model((3, 256), w, np.uint8, None), _feeds((3, 256), np.uint8)
    program = build_program(load_model(model), AVX2)
    assert any(" = dot4sat(" in kernel_text(kern) for kern in program.kernels)
    np.testing.assert_array_equal(run_program(program, feeds)[0], _exact(feeds, w, None))


def test_full_range_weights_keep_the_exact_words():
    w = rng.integers(-128, 128, (64, 32)).astype(np.int8)  # a quarter of the pairs would need a fix
    program = build_program(load_model(_model((4, 64), w, np.uint8, None)), AVX2)
    texts = [kernel_text(kern) for kern in program.kernels]
    assert any(" = dotw(" in t for t in texts) and not any(" = dot4sat(" in t for t in texts)
