"""Loop kinds, local buffers, conditionals and explicit vectors rendered to LLVM and run
against numpy, plus text checks on the generated IR."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from aic.codegen.llvm import compile_program
from aic.codegen.llvm_types import CodegenError
from aic.codegen.target import Target
from aic.ir.dtypes import DType
from aic.ir.loop import (
    Allocate,
    Barrier,
    Bin,
    Broadcast,
    Buffer,
    Cast,
    Const,
    For,
    ForKind,
    If,
    Let,
    Load,
    Prefetch,
    Ramp,
    Scope,
    Select,
    Seq,
    Store,
    Var,
)

from .util import Case, build_program, run_cases

F32, I64 = DType.float32, DType.int64


def f32(v: float) -> Const:
    return Const(v, F32)


def loop_cases(rng: np.random.Generator) -> tuple[list[Case], dict[str, np.ndarray]]:
    cases, expected = [], {}
    i, j, v, k = Var("i"), Var("j"), Var("v"), Var("k")

    # serial: a transpose
    x, y = Buffer("x", F32, 12), Buffer("y", F32, 12)
    data = rng.normal(size=12).astype(np.float32)
    body = For(i, Const(3), For(j, Const(4), Store(y, j * 3 + i, Load(x, i * 4 + j))))
    cases.append(Case("transpose", body, {x: data}, [y]))
    expected["transpose"] = data.reshape(3, 4).T.ravel()

    # parallel inside serial, capturing an outer loop var and a let; a nested parallel loop
    x, y = Buffer("x", F32, 2 * 37), Buffer("y", F32, 2 * 37 * 3)
    data = rng.normal(size=74).astype(np.float32)
    s = Var("s", F32)
    inner = For(k, Const(3), Store(y, (i * 37 + j) * 3 + k, Load(x, i * 37 + j) + s), ForKind.PARALLEL)
    body = For(i, Const(2), Let(s, (Cast(F32, i) + f32(1)) * f32(10), For(j, Const(37), inner, ForKind.PARALLEL)))
    cases.append(Case("parallel", body, {x: data}, [y]))
    expected["parallel"] = (data.reshape(2, 37, 1) + (np.arange(2).reshape(2, 1, 1) + 1) * 10).repeat(3, 2).ravel()

    # a prefetch of the line 4 elements ahead changes nothing
    x, y = Buffer("x", F32, 12), Buffer("y", F32, 12)
    data = rng.normal(size=12).astype(np.float32)
    body = For(i, Const(12), Seq([Prefetch(x, Bin("min", i + 4, Const(11))), Store(y, i, Load(x, i) * f32(2))]))
    cases.append(Case("prefetch", body, {x: data}, [y]))
    expected["prefetch"] = data * 2

    # vectorized, contiguous, with a scalar weight broadcast into the lanes; start offset
    x, c, y = Buffer("x", F32, 32), Buffer("c", F32, 1), Buffer("y", F32, 32)
    data = rng.normal(size=32).astype(np.float32)
    body = For(i, Const(4), For(v, Const(8), Store(y, i * 8 + v, Load(x, i * 8 + v) * f32(2) + Load(c, Const(0))),
                                ForKind.VECTORIZED))  # fmt: skip
    cases.append(Case("vec", body, {x: data}, [y], {c: np.array([0.5], np.float32)}))
    expected["vec"] = data * 2 + 0.5

    # vectorized gather (stride 5), reversed scatter (stride -1), let of a lane-dependent value
    x, y = Buffer("x", F32, 40), Buffer("y", F32, 8)
    data = rng.normal(size=40).astype(np.float32)
    t = Var("t", F32)
    body = For(v, Const(8), Let(t, Load(x, v * 5), Store(y, Const(7) - v, t + t)), ForKind.VECTORIZED)
    cases.append(Case("gather", body, {x: data}, [y]))
    expected["gather"] = (data[::5] * 2)[::-1]

    # vectorized tail under a lane mask: 13 elements in two vectors of 8; an else branch
    x, y = Buffer("x", F32, 13), Buffer("y", F32, 13)
    data = rng.normal(size=13).astype(np.float32)
    n = i * 8 + v
    guarded = If(Bin("lt", n, Const(13)),
                 If(Bin("gt", Load(x, n), f32(0)), Store(y, n, Load(x, n)), Store(y, n, f32(-1))))  # fmt: skip
    body = For(i, Const(2), For(v, Const(8), guarded, ForKind.VECTORIZED))
    cases.append(Case("tail", body, {x: data}, [y]))
    expected["tail"] = np.where(data > 0, data, -1).astype(np.float32)

    # vectorized with an inner serial loop accumulating through memory; integer div by zero in lanes
    x, y = Buffer("x", F32, 32), Buffer("y", F32, 8)
    data = rng.normal(size=32).astype(np.float32)
    body = Seq(
        [
            For(v, Const(8), Store(y, v, f32(0)), ForKind.VECTORIZED),
            For(v, Const(8), For(k, Const(4), Store(y, v, Load(y, v) + Load(x, k * 8 + v))), ForKind.VECTORIZED),
        ]
    )
    cases.append(Case("accumulate", body, {x: data}, [y]))
    expected["accumulate"] = data.reshape(4, 8).sum(0)
    a, b, q = Buffer("a", I64, 16), Buffer("b", I64, 16), Buffer("q", I64, 16)
    av, bv = np.arange(-8, 8, dtype=np.int64) * 7, np.array([0, -1, 2, 3] * 4, dtype=np.int64)
    body = For(i, Const(2), For(v, Const(8), Store(q, i * 8 + v, Load(a, i * 8 + v) // Load(b, i * 8 + v)),
                                ForKind.VECTORIZED))  # fmt: skip
    cases.append(Case("divzero", body, {a: av, b: bv}, [q]))
    expected["divzero"] = np.where(bv == 0, 0, np.trunc(av / np.where(bv == 0, 1, bv))).astype(np.int64)

    # unrolled (constant extent), unrolled past the limit (a counted loop), a stack buffer, If/else, barrier
    x, y = Buffer("x", F32, 100), Buffer("y", F32, 100)
    tmp = Buffer("tmp", F32, 4, Scope.STACK)
    data = rng.normal(size=100).astype(np.float32)
    body = Seq([
        For(i, Const(25), Allocate(tmp, Seq([
            For(k, Const(4), Store(tmp, k, Load(x, i * 4 + k) * f32(3)), ForKind.UNROLLED),
            Barrier(),
            For(k, Const(4), If(Bin("ge", Load(tmp, k), f32(0)), Store(y, i * 4 + k, Load(tmp, Const(3) - k)),
                                Store(y, i * 4 + k, f32(0))), ForKind.UNROLLED),
        ]))),
        For(j, Const(100), Store(y, j, Load(y, j) + f32(1)), ForKind.UNROLLED),
    ])  # fmt: skip
    cases.append(Case("unrolled", body, {x: data}, [y]))
    tmpv = data.reshape(25, 4) * 3
    expected["unrolled"] = (np.where(tmpv >= 0, tmpv[:, ::-1], 0) + 1).ravel()

    # explicit vectors: Load lanes, Ramp gather, Broadcast, vector Select, bool and half vectors
    x, y = Buffer("x", F32, 16), Buffer("y", F32, 16)
    flags, h = Buffer("flags", DType.bool, 8), Buffer("h", DType.float16, 8)
    data = rng.normal(size=16).astype(np.float32)
    vx = Load(x, Const(0), 8)
    odd = Load(x, Ramp(Const(1), 2, 8))
    body = Seq([
        Store(y, Const(0), Select(Bin("gt", vx, Broadcast(f32(0), 8)), vx, odd)),
        Store(y, Ramp(Const(8), 1, 8), Load(x, Const(8), 8) * Broadcast(f32(2), 8)),
        Store(flags, Const(0), Bin("gt", vx, Broadcast(f32(0), 8))),
        Store(h, Const(0), Cast(DType.float16, Load(x, Const(8), 8))),
    ])  # fmt: skip
    cases.append(Case("vectors", body, {x: data}, [y, flags, h]))
    expected["vectors"] = np.concatenate([np.where(data[:8] > 0, data[:8], data[1::2]), data[8:] * 2])
    expected["vectors.flags"] = data[:8] > 0
    expected["vectors.h"] = data[8:].astype(np.float16)
    return cases, expected


@pytest.mark.parametrize("threads", [1, 2])
def test_loop_kinds(threads, rng, tmp_path):
    cases, expected = loop_cases(rng)
    results = run_cases(cases, tmp_path, num_threads=threads)
    for name, ref in expected.items():
        case, _, out = name.partition(".")
        got = results[case][{"": 0, "flags": 1, "h": 2}[out]]
        np.testing.assert_allclose(got.astype(np.float64), ref.astype(np.float64), rtol=1e-6, err_msg=name)


def test_generated_ir(rng):
    cases, _ = loop_cases(rng)
    code = compile_program(build_program(cases), Target.parse("llvm"), 2)
    ir = code.llvm_ir
    assert "<8 x float>" in ir and "load <8 x float>" in ir  # vectorized loops are vector code
    assert "@llvm.masked.load.v8f32" in ir and "@llvm.masked.store.v8f32" in ir  # the tail is masked
    assert "@llvm.masked.gather.v8f32" in ir  # stride-5 lanes gather
    assert "call void @llvm.prefetch.p0(ptr" in ir
    assert "call void @aic_parallel_for(ptr" in ir and "aic_k_parallel.par" in ir
    assert "define internal" in ir and "define hidden void @aic_entry" in ir
    assert code.object[:4] == b"\x7fELF"


def test_contiguous_lanes_are_plain_vector_accesses(rng):
    cases, _ = loop_cases(rng)
    (vec,) = [c for c in cases if c.name == "vec"]
    ir = compile_program(build_program([vec]), Target.parse("llvm"), 0).llvm_ir
    assert "load <8 x float>" in ir and "store <8 x float>" in ir
    assert "@llvm.fmuladd.v8f32" in ir  # x * 2 + c contracts, as in C
    assert "gather" not in ir and "scatter" not in ir and "masked" not in ir


def test_weights_stay_out_of_llvm_ir():
    w, y, i = Buffer("w", F32, 16384), Buffer("y", F32, 16384), Var("i")
    weights = np.full(16384, 1234.5678, dtype=np.float32)
    case = Case("scale", For(i, Const(16384), Store(y, i, Load(w, i) * f32(2))), {}, [y], {w: weights})
    program = build_program([case])
    code = compile_program(program, Target.parse("llvm"), 2)
    assert "1234.5678" not in code.llvm_ir and "0x40934A4560000000" not in code.llvm_ir.upper()
    assert len(code.llvm_ir) < 20_000 and len(code.object) < 20_000  # the 64 KiB of weights are linked later


def test_unvectorizable_body_falls_back_to_scalar_loop(rng, tmp_path, caplog):
    x, y, v, k = Buffer("x", F32, 8), Buffer("y", F32, 8), Var("v"), Var("k")
    tmp = Buffer("tmp", F32, 2, Scope.STACK)
    body = For(v, Const(8), Allocate(tmp, Seq([
        For(k, Const(2), Store(tmp, k, Load(x, v) * Cast(F32, k + 1))),
        Store(y, v, Load(tmp, Const(0)) + Load(tmp, Const(1))),
    ])), ForKind.VECTORIZED)  # fmt: skip
    data = rng.normal(size=8).astype(np.float32)
    with caplog.at_level(logging.DEBUG, logger="aic.codegen"):
        result = run_cases([Case("fallback", body, {x: data}, [y])], tmp_path)
    np.testing.assert_allclose(result["fallback"][0], data * 3, rtol=1e-6)
    assert "rendered as a scalar loop: it allocates a local buffer" in caplog.text


@pytest.mark.parametrize("kind", [ForKind.GPU_BLOCK_X, ForKind.GPU_THREAD_X])
def test_gpu_loops_are_rejected(kind):
    y, i = Buffer("y", F32, 8), Var("i")
    case = Case("gpu", For(i, Const(8), Store(y, i, f32(0)), kind), {}, [y])
    with pytest.raises(CodegenError, match=f"kernel gpu: loop i is bound to {kind.value}"):
        compile_program(build_program([case]), Target.parse("llvm"), 2)


def test_unbound_variable_is_a_clear_error():
    y, i = Buffer("y", F32, 8), Var("i")
    case = Case("bad", Store(y, Const(0), Cast(F32, i)), {}, [y])
    with pytest.raises(CodegenError, match="kernel bad: variable i is used outside its loop"):
        compile_program(build_program([case]), Target.parse("llvm"), 2)
