"""Loop IR expressions rendered to LLVM and run, against numpy: every binary op,
unary op, select and cast for every dtype, with the defined edge cases (x/0, shifts
past the width, NaN compares, saturating float->int casts, half-precision rounding)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from aic.ir.dtypes import DType
from aic.ir.loop import Bin, Buffer, Cast, Const, For, Load, Select, Seq, Store, Unary, Var

from .util import Case, run_cases

N = 24
INTS = [DType.int8, DType.int16, DType.int32, DType.int64, DType.uint8, DType.uint16, DType.uint32, DType.uint64]
FLOATS = [DType.float16, DType.bfloat16, DType.float32, DType.float64]
CMP = ["eq", "ne", "lt", "le", "gt", "ge"]


def sample(dt: DType, rng: np.random.Generator, zeros: bool = False) -> np.ndarray:
    """N values of `dt` with the edge cases first."""
    if dt is DType.bool:
        return rng.random(N) < 0.5
    if dt.is_float:
        edge = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.5, -2.5, 3.0]
        return np.concatenate([edge, rng.normal(0, 10, N - len(edge))]).astype(dt.numpy)
    info = np.iinfo(dt.numpy)
    edge = [0, 1, info.min, info.max, info.max - 1, 7, 3, 5] if zeros else [info.min, info.max, 1, 2, 7, 3, 5, 9]
    if dt.is_signed:
        edge += [-1, -7]
    body = rng.integers(info.min // 2 if dt.is_signed else 0, info.max // 2, N - len(edge), dtype=dt.numpy)
    return np.concatenate([np.array(edge, dtype=dt.numpy), body])


def elementwise(name: str, dt_in: DType, dt_out: DType, expr, arity: int = 2) -> tuple[Case, list[Buffer]]:
    bufs = [Buffer(f"in{k}", dt_in, N) for k in range(arity)]
    out = Buffer("out", dt_out, N)
    i = Var("i")
    body = For(i, Const(N), Store(out, i, expr(*[Load(b, i) for b in bufs])))
    return Case(name, body, {}, [out]), bufs


def c_int_ref(op: str, a: np.ndarray, b: np.ndarray, dt: DType) -> np.ndarray:
    """C semantics with aic's definitions for the undefined cases."""
    bits = dt.itemsize * 8
    out = []
    for x, y in zip(a.tolist(), b.tolist()):
        if op in ("div", "mod"):
            if y == 0:
                r = 0
            else:
                q = abs(x) // abs(y) * (1 if (x >= 0) == (y >= 0) else -1)
                r = q if op == "div" else x - y * q
        elif op == "shl":
            r = x << y if 0 <= y < bits else 0
        else:  # shr: past the width, the sign
            r = x >> y if 0 <= y < bits else (-1 if x < 0 else 0)
        out.append(r)
    return np.array([v % (1 << bits) for v in out], dtype=np.uint64).astype(dt.numpy)


def binary_cases(dt: DType, rng: np.random.Generator):
    a, b = sample(dt, rng), sample(dt, rng, zeros=True)
    if not dt.is_float and dt is not DType.bool:
        b[rng.integers(0, N, 4)] = 0
    ops = {}
    if dt.is_float:
        compute = a.astype(np.float64), b.astype(np.float64)
        f32 = np.float64 if dt is DType.float64 else np.float32
        x, y = (v.astype(f32) for v in compute)
        with np.errstate(all="ignore"):
            ops = {"add": x + y, "sub": x - y, "mul": x * y, "div": x / y, "mod": np.fmod(x, y),
                   "min": np.minimum(x, y), "max": np.maximum(x, y)}  # fmt: skip
        ops = {k: v.astype(dt.numpy) for k, v in ops.items()}
    elif dt is DType.bool:
        ops = {"and": a & b, "or": a | b, "xor": a ^ b}
    else:
        with np.errstate(all="ignore"):
            ops = {"add": a + b, "sub": a - b, "mul": a * b, "min": np.minimum(a, b), "max": np.maximum(a, b),
                   "and": a & b, "or": a | b, "xor": a ^ b}  # fmt: skip
        ops["div"] = c_int_ref("div", a, b, dt)
        ops["mod"] = c_int_ref("mod", a, b, dt)
        shift = (b % (dt.itemsize * 8 + 4)).astype(dt.numpy)  # some past the width
        if dt.is_signed:
            shift[:2] = [-1, dt.itemsize * 8]
        ops["shl"] = (c_int_ref("shl", a, shift, dt), shift)
        ops["shr"] = (c_int_ref("shr", a, shift, dt), shift)
    with np.errstate(invalid="ignore"):
        for op, fn in zip(CMP, [np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal]):
            ops[op] = fn(a, b)
    cases, expected = [], {}
    for op, ref in ops.items():
        ref, rhs = ref if isinstance(ref, tuple) else (ref, b)
        out_dt = DType.bool if op in CMP else dt
        case, (ba, bb) = elementwise(op, dt, out_dt, lambda x, y, op=op: Bin(op, x, y))
        case.inputs = {ba: a, bb: rhs}
        cases.append(case)
        expected[op] = ref
    return cases, expected


@pytest.mark.parametrize("dt", [*INTS, *FLOATS, DType.bool], ids=lambda d: d.name)
def test_binary_ops(dt, rng, tmp_path):
    cases, expected = binary_cases(dt, rng)
    results = run_cases(cases, tmp_path, opt_level=1)
    for op, ref in expected.items():
        got = results[op][0]
        if dt.is_float and op not in CMP:
            np.testing.assert_array_equal(got.astype(np.float64), ref.astype(np.float64), err_msg=f"{dt.name} {op}")
        else:
            np.testing.assert_array_equal(got, ref, err_msg=f"{dt.name} {op}")


def test_unary_and_select(rng, tmp_path):
    cases, expected = [], {}
    for dt in [DType.int8, DType.uint32, DType.int64, DType.float32, DType.float16, DType.float64]:
        a = sample(dt, rng)
        case, (ba,) = elementwise(f"neg_{dt.name}", dt, dt, lambda x: Unary("neg", x), arity=1)
        case.inputs = {ba: a}
        cases.append(case)
        with np.errstate(over="ignore"):
            expected[case.name] = -a
        if not dt.is_float:
            case, (ba,) = elementwise(f"not_{dt.name}", dt, dt, lambda x: Unary("not", x), arity=1)
            case.inputs = {ba: a}
            cases.append(case)
            expected[case.name] = ~a
        c, x, y = Buffer("c", DType.bool, N), Buffer("x", dt, N), Buffer("y", dt, N)
        out, i = Buffer("out", dt, N), Var("i")
        cond = rng.random(N) < 0.5
        b = sample(dt, rng)
        body = For(i, Const(N), Store(out, i, Select(Load(c, i), Load(x, i), Load(y, i))))
        cases.append(Case(f"select_{dt.name}", body, {c: cond, x: a, y: b}, [out]))
        expected[f"select_{dt.name}"] = np.where(cond, a, b)
    a = sample(DType.bool, rng)
    case, (ba,) = elementwise("not_bool", DType.bool, DType.bool, lambda x: Unary("not", x), arity=1)
    case.inputs = {ba: a}
    cases.append(case)
    expected["not_bool"] = ~a
    results = run_cases(cases, tmp_path, opt_level=1)
    for name, ref in expected.items():
        np.testing.assert_array_equal(results[name][0], ref, err_msg=name)


def cast_ref(a: np.ndarray, src: DType, dst: DType) -> np.ndarray:
    if dst is DType.bool:
        return a != 0  # NaN is true
    if src.is_float and not dst.is_float:
        info = np.iinfo(dst.numpy)
        x = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=float(info.max), neginf=float(info.min))
        x = np.trunc(x)
        out = np.where(x >= float(info.max), info.max, np.where(x <= float(info.min), info.min, 0))
        inside = (x < float(info.max)) & (x > float(info.min))
        return np.where(inside, x, 0).astype(dst.numpy) + np.where(inside, 0, out).astype(dst.numpy)
    with np.errstate(invalid="ignore", over="ignore"):
        if src.is_float and dst.is_float and src is not DType.float64 and dst is not DType.float64:
            return a.astype(np.float32).astype(dst.numpy)
        return a.astype(dst.numpy)


@pytest.mark.parametrize("src", [*INTS, *FLOATS, DType.bool], ids=lambda d: d.name)
def test_casts(src, rng, tmp_path):
    a = sample(src, rng)
    if src.is_float:  # values around rounding boundaries of the half types
        a[8:12] = np.array([1.00048828125, 1.0009765625 * 3, 65504.0, 1e-6], dtype=np.float64).astype(src.numpy)
    cases, expected = [], {}
    for dst in [*INTS, *FLOATS, DType.bool]:
        case, (ba,) = elementwise(dst.name, src, dst, lambda x, dst=dst: Cast(dst, x), arity=1)
        case.inputs = {ba: a}
        cases.append(case)
        expected[dst.name] = cast_ref(a, src, dst)
    results = run_cases(cases, tmp_path, opt_level=1)
    for dst in [*INTS, *FLOATS, DType.bool]:
        got, ref = results[dst.name][0], expected[dst.name]
        if dst.is_float:
            np.testing.assert_array_equal(got.astype(np.float64), ref.astype(np.float64), err_msg=f"->{dst.name}")
        else:
            np.testing.assert_array_equal(got, ref, err_msg=f"{src.name}->{dst.name}")


def test_half_precision_rounds_at_store_and_cast(tmp_path):
    """float16/bfloat16 compute in float32 and round to nearest even when stored or cast."""
    x = Buffer("x", DType.float32, 6)
    h, bf = Buffer("h", DType.float16, 6), Buffer("bf", DType.bfloat16, 6)
    twice = Buffer("twice", DType.float32, 6)
    i = Var("i")
    body = For(i, Const(6), Seq([
        Store(h, i, Cast(DType.float16, Load(x, i))),
        Store(bf, i, Cast(DType.bfloat16, Load(x, i))),
        Store(twice, i, Cast(DType.float32, Cast(DType.bfloat16, Load(x, i))) * Const(2.0, DType.float32)),
    ]))  # fmt: skip
    data = np.array([1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-8, 1 + 3 * 2**-8, np.nan, -70000.0], dtype=np.float32)
    (gh, gbf, gt) = run_cases([Case("half", body, {x: data}, [h, bf, twice])], tmp_path)["half"]
    with np.errstate(over="ignore"):  # -70000 is past float16's range: inf
        np.testing.assert_array_equal(gh, data.astype(np.float16))
    np.testing.assert_array_equal(gbf.astype(np.float32), data.astype(ml_dtypes.bfloat16).astype(np.float32))
    np.testing.assert_array_equal(gt, data.astype(ml_dtypes.bfloat16).astype(np.float32) * 2)


def test_multiply_add_contraction(rng, tmp_path):
    """a*b+c, c+a*b, a*b-c and c-a*b fuse into one rounding (llvm.fmuladd), like C's fp-contract."""
    a, b, c = (Buffer(n, DType.float32, N) for n in "abc")
    outs = [Buffer(f"y{k}", DType.float32, N) for k in range(4)]
    i = Var("i")
    la, lb, lc = Load(a, i), Load(b, i), Load(c, i)
    forms = [la * lb + lc, lc + la * lb, la * lb - lc, lc - la * lb]
    body = For(i, Const(N), Seq([Store(o, i, f) for o, f in zip(outs, forms)]))
    data = {buf: rng.normal(size=N).astype(np.float32) for buf in (a, b, c)}
    got = run_cases([Case("fma", body, data, outs)], tmp_path)["fma"]
    x, y, z = (data[buf].astype(np.float64) for buf in (a, b, c))
    for result, want in zip(got, [x * y + z, z + x * y, x * y - z, z - x * y]):
        np.testing.assert_allclose(result, want, rtol=1e-6, atol=1e-7)
