"""The loop-IR verifier: each rule refuses a kernel that breaks it and accepts its fixed form.
(Every kernel built by `build_program` is verified, so the whole suite runs it on real kernels.)"""

import pytest
from aic.codegen.target import Target
from aic.compiler.schedule import apply_all
from aic.ir.dtypes import DType
from aic.ir.loop import (
    INDEX,
    Barrier,
    Bin,
    Buffer,
    Const,
    For,
    ForKind,
    If,
    Kernel,
    Let,
    Load,
    Prefetch,
    Seq,
    Store,
    Var,
)
from aic.ir.loop_verify import LoopVerifyError, verify_kernel
from aic.ir.schedule import Split

from tests.lower.test_schedule import add_kernel

F32 = DType.float32


def copy_kernel(n: int, read_size: int, write_size: int, shift: int = 0, kind: ForKind = ForKind.SERIAL) -> Kernel:
    """out[i + shift] = a[i] for i < n."""
    a, out = Buffer("a", F32, read_size), Buffer("out", F32, write_size)
    i = Var("i")
    return Kernel("copy", [a, out], For(i, Const(n), Store(out, i + shift, Load(a, i)), kind))


def test_in_bounds_accesses_pass_and_out_of_bounds_ones_are_named():
    assert verify_kernel(copy_kernel(8, 8, 8)) == []
    with pytest.raises(LoopVerifyError, match=r"kernel copy: load from a\[i\] reaches elements 0..7 of 6"):
        verify_kernel(copy_kernel(8, 6, 8))
    with pytest.raises(LoopVerifyError, match=r"store to out\[\(i \+ 1\)\] reaches elements 1..8 of 8"):
        verify_kernel(copy_kernel(8, 8, 8, shift=1))


def test_a_prefetch_stays_inside_its_buffer():
    a, out = Buffer("a", F32, 8), Buffer("out", F32, 8)
    i = Var("i")

    def kernel(ahead: int) -> Kernel:
        return Kernel("ahead", [a, out], For(i, Const(8), Seq([Prefetch(a, i + ahead), Store(out, i, Load(a, i))])))

    verify_kernel(kernel(0))
    with pytest.raises(LoopVerifyError, match=r"prefetch of a\[\(i \+ 2\)\] reaches elements 2..9 of 8"):
        verify_kernel(kernel(2))


def test_a_guard_bounds_the_expression_it_tests():
    a, out = Buffer("a", F32, 10), Buffer("out", F32, 10)
    o, i = Var("o"), Var("i")
    at = o * 4 + i  # 3 x 4 iterations over 10 elements: the last tile is guarded
    body = If(Bin("lt", at, Const(10)), Store(out, at, Load(a, at)))
    verify_kernel(Kernel("tiles", [a, out], For(o, Const(3), For(i, Const(4), body))))
    with pytest.raises(LoopVerifyError, match=r"reaches elements 0..11 of 10"):
        verify_kernel(Kernel("tiles", [a, out], For(o, Const(3), For(i, Const(4), body.then))))


def test_split_with_a_tail_stays_verified():
    kernel = add_kernel(5, 12)
    verify_kernel(apply_all(kernel, [Split("i1", 5)]))  # 12 = 2 * 5 + 2: guarded tail


def test_data_dependent_indices_are_reported_not_refused():
    idx, a, out = Buffer("idx", INDEX, 4), Buffer("a", F32, 10), Buffer("out", F32, 4)
    i = Var("i")
    kernel = Kernel("gather", [idx, a, out], For(i, Const(4), Store(out, i, Load(a, Load(idx, i)))))
    assert verify_kernel(kernel) == ["load from a[idx[i]]"]


def test_parallel_iterations_must_not_write_one_element():
    verify_kernel(copy_kernel(8, 8, 8, kind=ForKind.PARALLEL))
    a, total = Buffer("a", F32, 8), Buffer("total", F32, 1)
    i = Var("i")
    body = Store(total, Const(0), Load(total, Const(0)) + Load(a, i))
    with pytest.raises(LoopVerifyError, match="iterations of parallel loop i all store to total"):
        verify_kernel(Kernel("sum", [a, total], For(i, Const(8), body, ForKind.PARALLEL)))


def test_types_and_scopes():
    a, out = Buffer("a", F32, 4), Buffer("out", DType.int32, 4)
    i, j = Var("i"), Var("j")
    with pytest.raises(LoopVerifyError, match="store of float32"):
        verify_kernel(Kernel("k", [a, out], For(i, Const(4), Store(out, i, Load(a, i)))))
    with pytest.raises(LoopVerifyError, match="variable j is used outside"):
        verify_kernel(Kernel("k", [a], For(i, Const(4), Store(a, j, Load(a, i)))))
    with pytest.raises(LoopVerifyError, match="neither a parameter nor allocated"):
        verify_kernel(Kernel("k", [a], For(i, Const(4), Store(out, i, Const(0, DType.int32)))))
    with pytest.raises(LoopVerifyError, match="let x binds"):
        verify_kernel(Kernel("k", [a], Let(Var("x", F32), Const(1), Store(a, Const(0), Const(0.0, F32)))))


def test_barriers_only_in_gpu_loops_reached_by_every_thread():
    buf = Buffer("s", F32, 64)
    t = Var("t")
    store = Store(buf, t, Const(1.0, F32))
    good = Kernel("k", [buf], For(t, Const(64), Seq([store, Barrier()]), ForKind.GPU_THREAD_X))
    verify_kernel(good, gpu=True)
    with pytest.raises(LoopVerifyError, match="barrier in a kernel for a CPU target"):
        verify_kernel(good, gpu=Target.parse("llvm").kind == "cuda")
    with pytest.raises(LoopVerifyError, match="outside GPU-bound loops"):
        verify_kernel(Kernel("k", [buf], Seq([Barrier()])), gpu=True)
    divergent = For(t, Const(64), If(Bin("lt", t, Const(32)), Seq([store, Barrier()])), ForKind.GPU_THREAD_X)
    with pytest.raises(LoopVerifyError, match="condition differing between threads"):
        verify_kernel(Kernel("k", [buf], divergent), gpu=True)
