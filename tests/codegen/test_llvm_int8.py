"""The int8 dot-product intrinsics dot4 / dot2 / dotw / dot4sat rendered to LLVM and run, against the loop
evaluator's numpy definition: scalar and 8 lanes, on the host (AVX2: vpmaddwd for dot2 and dotw,
vpmaddubsw + vpmaddwd for dot4sat) and without AVX2 (plain LLVM IR); full byte and int16 ranges, so any
saturating step would show (dot4sat's pair sums must saturate exactly as defined)."""

from __future__ import annotations

import numpy as np
import pytest
from aic.ir.dtypes import DType
from aic.ir.loop import Buffer, Call, Const, For, ForKind, Load, Store, Var
from aic.ir.loop_eval import _CALLS

from .util import Case, run_cases

rng = np.random.default_rng(3)


def dot_case(fn: str, lane: DType, n: int, lanes: int) -> Case:
    acc, a, b, y = (Buffer("acc", DType.int32, n), Buffer("a", lane, n), Buffer("b", lane, n),
                    Buffer("y", DType.int32, n))
    i, v = Var("i"), Var("v")
    if lanes == 1:
        body = For(i, Const(n), Store(y, i, Call(fn, (Load(acc, i), Load(a, i), Load(b, i)))))
    else:
        at = i * lanes + v
        inner = Store(y, at, Call(fn, (Load(acc, at), Load(a, at), Load(b, at))))
        body = For(i, Const(n // lanes), For(v, Const(lanes), inner, ForKind.VECTORIZED))
    info = np.iinfo(lane.numpy)
    data = {acc: rng.integers(-2**31, 2**31, n, dtype=np.int64).astype(np.int32),
            a: rng.integers(info.min, info.max + 1, n).astype(lane.numpy),
            b: rng.integers(info.min, info.max + 1, n).astype(lane.numpy)}
    data[a][:4] = -1  # every byte 255, against weight bytes 127 and -128: the largest products
    data[b][:2], data[b][2:4] = (0x7F7F7F7F, -0x7F7F7F80) if lane == DType.int32 else (0x7F7F, -0x7F80)
    if fn == "dotw":  # int16 halves: both -32768 (the one pair sum that wraps: 2^31)
        data[a][4], data[b][4] = -0x7FFF8000, -0x7FFF8000
    return Case(f"{fn}_{lanes}", body, data, [y])


@pytest.mark.parametrize("target", ["llvm", "llvm -mattr=-avx2"])
def test_byte_dots_match_the_definition(target, tmp_path):
    n = 64
    kinds = (("dot4", DType.int32), ("dot2", DType.int16), ("dotw", DType.int32), ("dot4sat", DType.int32))
    cases = [dot_case(fn, lane, n, lanes) for fn, lane in kinds for lanes in (1, 8)]
    got = run_cases(cases, tmp_path, target=target)
    for case in cases:
        acc, a, b = (case.inputs[k] for k in case.inputs)
        expected = _CALLS[case.name.split("_")[0]](acc, a, b)
        np.testing.assert_array_equal(got[case.name][0], expected, err_msg=case.name)


def test_definition_by_hand():
    a = np.array([0x01FF80FF], np.int32)  # bytes (little endian) ff 80 ff 01
    b = np.array([0x7F80FF02], np.int32)  # bytes 02 ff 80 7f
    assert int(_CALLS["dot4"](np.int32(5), a, b)[0]) == 5 + 255 * 2 + 128 * -1 + 255 * -128 + 1 * 127
    assert int(_CALLS["dot2"](np.int32(-1), np.int16(-1), np.int16(-32768))) == -1 + 255 * 0 + 255 * -128
    assert int(_CALLS["dotw"](np.int32(1), np.int32(0x0003FFFF), np.int32(0x7FFF0002))) == 1 - 2 + 3 * 32767
    assert int(_CALLS["dotw"](np.int32(0), np.int32(-0x7FFF8000), np.int32(-0x7FFF8000))) == -(2**31)
    assert int(_CALLS["dot4sat"](np.int32(5), a, b)[0]) == 5 + (255 * 2 + 128 * -1) + (255 * -128 + 1 * 127)
    every_byte = np.array([-1], np.int32)  # 255 in each byte: pairs 255 * (127 + 127) and 255 * (-128 - 128)
    assert int(_CALLS["dot4sat"](np.int32(0), every_byte, np.array([0x7F7F8080], np.int32))[0]) == 32767 - 32768
