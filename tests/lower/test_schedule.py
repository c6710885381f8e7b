"""Schedule records: they print, compare, apply by loop name, keep results, and replay deterministically."""

import numpy as np
import pytest
from aic.codegen.target import Target
from aic.compiler.lower.core import LowerCtx, linear, store
from aic.compiler.schedule import apply, apply_all, default_schedule
from aic.ir import GraphBuilder, TensorType
from aic.ir.dtypes import DType
from aic.ir.loop import INDEX, Allocate, Buffer, Const, For, ForKind, Interleave, Kernel, Load, Scope, Store, Var
from aic.ir.loop_eval import run_kernel
from aic.ir.loop_printer import kernel_text
from aic.ir.loop_tools import binop, exprs_of, seq, stmt_exprs, stmts_of
from aic.ir.schedule import (
    Bind,
    CachePack,
    Fuse,
    MicroKernel,
    Parallel,
    Reorder,
    ScheduleError,
    Split,
    Tile,
    Unroll,
    Vectorize,
    schedule_text,
)

from tests.codegen.util import Case, run_cases
from tests.lower.lower_util import lower

AVX2 = Target.parse("llvm -mtriple=x86_64-unknown-linux-gnu -mcpu=haswell -mattr=+avx2,+fma")
rng = np.random.default_rng(6)


def add_kernel(rows: int = 5, cols: int = 12) -> Kernel:
    """out[i, j] = a[i, j] + b[j] * 2 over loops named i0 (rows) and i1 (columns)."""
    ctx = LowerCtx(8)
    a = ctx.param("value", DType.float32, rows * cols, None, "in")
    b = ctx.param("value", DType.float32, cols, None, "in")
    out = ctx.param("value", DType.float32, rows * cols, None, "out")

    def body(index):
        value = Load(a, linear(index, (rows, cols))) + Load(b, index[1]) * Const(2.0, DType.float32)
        return store(out, linear(index, (rows, cols)), value)

    return Kernel("add", [a, b, out], ctx.loops((rows, cols), body))


def run(kernel: Kernel, rows: int = 5, cols: int = 12) -> np.ndarray:
    a = rng.standard_normal(rows * cols).astype(np.float32)
    b = rng.standard_normal(cols).astype(np.float32)
    out = np.zeros(rows * cols, np.float32)
    run_kernel(kernel, [a, b, out])
    np.testing.assert_allclose(out, (a.reshape(rows, cols) + b * 2).reshape(-1), rtol=1e-6)
    return out


def test_records_print_and_compare():
    records = [Split("i0", 4), Reorder(("i1", "i0")), Fuse("i0", "i1"), Tile("i0", "i1", 2, 4), Vectorize("i1", 8),
               Parallel("i0"), Unroll("i1"), Bind("i0", "blockIdx.x"), CachePack(1, 16), MicroKernel(6, 16)]
    assert schedule_text(records) == ("split(i0, 4); reorder(i1, i0); fuse(i0, i1); tile(i0, i1, 2, 4); "
                                      "vectorize(i1, 8); parallel(i0); unroll(i1); bind(i0, blockIdx.x); "
                                      "cache_pack(input 1, 16); micro_kernel(6, 16)")
    assert Split("i0", 4) == Split("i0", 4) != Split("i0", 8)
    assert len({Split("i0", 4), Split("i0", 4), Parallel("i0")}) == 2


@pytest.mark.parametrize("records", [
    [Split("i1", 5)],  # 12 is not a multiple of 5: a guarded tail
    [Reorder(("i1", "i0"))],
    [Fuse("i0", "i1"), Split("i0.i1", 8), Parallel("i0.i1.o")],
    [Tile("i0", "i1", 2, 4), Unroll("i1.i")],
    [Vectorize("i1", 8)],  # one whole vector and a remainder of 4
    [Reorder(("i1", "i0")), Vectorize("i1", 4)],  # an outer loop: the inner loop runs on vectors of columns
    [MicroKernel(6, 16), Parallel("i0")],  # directives change nothing after lowering
])
def test_records_keep_results(records):
    kernel = apply_all(add_kernel(), records)
    run(kernel)
    assert kernel.attrs["schedule"] == records


def test_application_is_deterministic_and_pure():
    original = add_kernel()
    before = kernel_text(original)
    records = [Tile("i0", "i1", 2, 4), Vectorize("i1.i", 4), Parallel("i0.o")]
    first, second = apply_all(original, records), apply_all(original, records)
    assert kernel_text(first) == kernel_text(second)
    assert kernel_text(original) == before
    assert "for parallel i0.o" in kernel_text(first) and "x4" in kernel_text(first)


def test_parallel_and_unroll_set_loop_kinds():
    kernel = apply_all(add_kernel(), [Parallel("i0"), Unroll("i1")])
    assert isinstance(kernel.body, For) and kernel.body.kind is ForKind.PARALLEL
    assert kernel.body.body.kind is ForKind.UNROLLED


def test_bad_records_raise():
    with pytest.raises(ScheduleError, match="no loop named"):
        apply(add_kernel(), Split("k9", 2))
    with pytest.raises(ScheduleError, match="not directly inside"):
        apply(add_kernel(), Fuse("i1", "i0"))
    with pytest.raises(ScheduleError, match="stride 12"):  # a column of a row-major array
        apply(apply(add_kernel(), Reorder(("i1", "i0"))), Vectorize("i0", 4))


def test_vectorize_expands_local_accumulators_per_lane():
    """A per-element accumulator inside the vectorized loop becomes one accumulator per lane."""
    rows, cols = 3, 8
    x = Buffer("x", DType.float32, rows * cols)
    out = Buffer("out", DType.float32, cols)
    acc = Buffer("acc", DType.float32, 1, Scope.STACK)
    ctx = LowerCtx(8)

    def column(j):
        step = ctx.loop(rows, lambda r: Store(acc, Const(0), Load(acc, Const(0)) + Load(x, r * cols + j)), "r")
        zero = Store(acc, Const(0), Const(0.0, DType.float32))
        return Allocate(acc, seq(zero, step, Store(out, j, Load(acc, Const(0)))))

    kernel = apply(Kernel("colsum", [x, out], ctx.loop(cols, column, "j")), Vectorize("j0", 8))
    assert "acc: f32[8]" in kernel_text(kernel)
    xs = rng.standard_normal(rows * cols).astype(np.float32)
    got = np.zeros(cols, np.float32)
    run_kernel(kernel, [xs, got])
    np.testing.assert_allclose(got, xs.reshape(rows, cols).sum(0), rtol=1e-6)


@pytest.mark.parametrize(("lanes", "whole"), [(8, True), (4, False), (16, False)])
def test_vectorize_reads_a_blocked_layout_by_whole_blocks(lanes, whole):
    """Channel c of a blocked [C/8, P, 8] array read as (c // 8, c % 8): vectors of one block's 8 lanes are
    contiguous loads; 16 lanes would span two blocks, and 4 start inside one (not proven to stay in it): both
    are refused as non-affine."""
    positions, channels = 5, 24
    x = Buffer("x", DType.float32, channels * positions)
    out = Buffer("out", DType.float32, positions * channels)
    ctx = LowerCtx(8)

    def element(i):
        p, c = i
        block, lane = binop("div", c, Const(8)), binop("mod", c, Const(8))
        return Store(out, p * channels + c, Load(x, binop("add", binop("mul", binop("add", binop("mul", block, Const(
            positions)), p), Const(8)), lane)))

    kernel = Kernel("nhwc", [x, out], ctx.loops((positions, channels), element, "i"))
    if not whole:
        with pytest.raises(ScheduleError, match="stride"):
            apply(kernel, Vectorize("i1", lanes))
        return
    vectorized = apply(kernel, Vectorize("i1", lanes))
    loads = [e for top in stmt_exprs(vectorized.body) for e in exprs_of(top) if isinstance(e, Load) and e.buffer is x]
    assert loads and all(ld.lanes == lanes for ld in loads)
    xs = rng.standard_normal(channels * positions).astype(np.float32)
    got = np.zeros(positions * channels, np.float32)
    run_kernel(vectorized, [xs, got])
    np.testing.assert_array_equal(got, xs.reshape(channels // 8, positions, 8).transpose(1, 0, 2).reshape(-1))


def test_default_schedules_matmul_as_micro_kernel():
    b = GraphBuilder()
    x = b.input("x", TensorType(DType.float32, (128, 64)))
    y = b.op("MatMul", x, b.const(rng.standard_normal((64, 128)).astype(np.float32)))
    program = lower(b.build([y]))
    records = [str(r) for r in program.kernels[0].attrs["schedule"]]
    assert records[:2] == ["micro_kernel(6, 16)", "cache_pack(input 1, 16)"]
    assert "unroll(r0)" in records and "vectorize(c0, 8)" in records and any(r.startswith("parallel") for r in records)
    again = lower(b.build([y]))
    assert kernel_text(again.kernels[0]) == kernel_text(program.kernels[0])


def test_default_schedule_vectorizes_and_parallelizes_large_elementwise():
    kernel = default_schedule(add_kernel(64, 1024), AVX2)
    text = kernel_text(kernel)
    assert "for parallel i0" in text and "x8" in text
    run(kernel, 64, 1024)


def scratch_kernel(blocks: int, width: int, reach: int) -> Kernel:
    """Per block i: tmp[i*width + p] = x[i*width + p], then out[i*width + q] = tmp[i*width + q] + tmp[i*width + q
    + reach] for q < width - 2: a scratch slice per block read through a window (reach 2 stays in the slice)."""
    f32 = DType.float32
    x, tmp, out = (Buffer(n, f32, blocks * width) for n in ("x", "tmp", "out"))
    i, p, q = Var("i"), Var("p"), Var("q")
    base = binop("mul", i, Const(width, INDEX))

    def at(v: Var, plus: int = 0):
        return binop("add", base, binop("add", v, Const(plus, INDEX)))

    copy = For(p, Const(width, INDEX), Store(tmp, at(p), Load(x, at(p))))
    window = For(q, Const(width - 2, INDEX), Store(out, at(q), Load(tmp, at(q)) + Load(tmp, at(q, reach))))
    return Kernel("scratch", [x, tmp, out], For(i, Const(blocks, INDEX), seq(copy, window)))


def test_default_schedule_parallelizes_blocks_that_reread_their_own_scratch_slice():
    blocks, width = 8, 8192
    kernel = default_schedule(scratch_kernel(blocks, width, 2), AVX2)
    assert "for parallel i" in kernel_text(kernel)
    x = rng.standard_normal(blocks * width).astype(np.float32)
    out = np.zeros_like(x)
    run_kernel(kernel, [x, np.zeros_like(x), out])
    xs, want = x.reshape(blocks, width), np.zeros((blocks, width), np.float32)
    want[:, : width - 2] = xs[:, : width - 2] + xs[:, 2:]
    np.testing.assert_array_equal(out.reshape(blocks, width), want)


def test_default_schedule_keeps_blocks_serial_when_a_window_reaches_the_next_slice():
    kernel = default_schedule(scratch_kernel(8, 8192, 3), AVX2)  # q + 3 reaches element `width` of the slice
    assert "parallel" not in kernel_text(kernel)


@pytest.mark.parametrize("phases", [2, 3, 4])
def test_vectorize_joins_the_phases_of_a_strided_store_into_one_interleaved_store(phases, tmp_path):
    """Stores to s*j + p for every phase p < s, one after another, become one store of s vectors interleaved (an
    upsampling's phases); the kernel computes the same in the loop interpreter and compiled."""
    cols = 21  # one vector of 16 and a scalar remainder of 5
    x = Buffer("x", DType.float32, cols)
    out = Buffer("out", DType.float32, phases * cols)
    ctx = LowerCtx(16)

    def column(j):
        stores = [Store(out, binop("add", binop("mul", j, Const(phases)), Const(p)),
                        Load(x, j) * Const(float(p + 1), DType.float32)) for p in reversed(range(phases))]
        return seq(*stores)

    kernel = apply(Kernel("upsample", [x, out], ctx.loop(cols, column, "j")), Vectorize("j0", 16))
    stores = [s for s in stmts_of(kernel.body) if isinstance(s, Store) and isinstance(s.value, Interleave)]
    assert len(stores) == 1 and stores[0].value.lanes == 16 * phases
    xs = rng.standard_normal(cols).astype(np.float32)
    expected = (xs[:, None] * np.arange(1, phases + 1, dtype=np.float32)).reshape(-1)
    got = np.zeros(phases * cols, np.float32)
    run_kernel(kernel, [xs, got])
    np.testing.assert_array_equal(got, expected)
    compiled = run_cases([Case("upsample", kernel.body, {x: xs}, [out])], tmp_path)
    np.testing.assert_array_equal(compiled["upsample"][0], expected)


def test_vectorize_keeps_strided_stores_that_miss_a_phase_scalar():
    """Two stores to 3*j and 3*j + 1 leave a phase out: no interleaved store covers them, and the loop is refused."""
    cols = 16
    x = Buffer("x", DType.float32, cols)
    out = Buffer("out", DType.float32, 3 * cols)
    ctx = LowerCtx(16)

    def column(j):
        return seq(*(Store(out, binop("add", binop("mul", j, Const(3)), Const(p)), Load(x, j)) for p in (0, 1)))

    with pytest.raises(ScheduleError, match="stride 3"):
        apply(Kernel("gap", [x, out], ctx.loop(cols, column, "j")), Vectorize("j0", 16))
