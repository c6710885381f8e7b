"""GPU schedules as loop IR: contractions read as GEMMs, and the verifier's view of GPU kernels."""

from __future__ import annotations

import numpy as np
import pytest
from aic.compiler.pipeline import lower_model
from aic.compiler.schedule_gpu_matmul import match_gemm
from aic.ir.dtypes import DType
from aic.ir.loop import INDEX, Barrier, Bin, Buffer, Const, For, ForKind, If, Kernel, Let, Seq, Store, Var
from aic.ir.loop_tools import static_int
from aic.ir.loop_verify import LoopVerifyError, verify_kernel

from tests.onnx_util import node_model

rng = np.random.default_rng(0)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
    ("x", "attrs", "w", "mnk", "outer"),
    [
        (f32(2, 5, 9, 11), {"pads": [1, 1, 1, 1]}, f32(20, 5, 3, 3), (2 * 9 * 11, 20, 5 * 9), (3, 1, 3)),
        (f32(1, 6, 13, 12), {"strides": [2, 2]}, f32(17, 6, 3, 3), (6 * 5, 17, 6 * 9), (2, 1, 3)),
        (f32(1, 16, 10, 10), {"strides": [2, 2]}, f32(24, 16, 1, 1), (25, 24, 16), (2, 1, 1)),
    ],
    ids=["3x3_pad", "3x3_stride2", "1x1_stride2"],
)
def test_conv_reads_as_gemm(x, attrs, w, mnk, outer):
    """M: the image and output pixels, N: the output channels, K: input channels x taps."""
    program = lower_model(node_model("Conv", {"x": x}, attrs=attrs, initializers={"w": w}), "cuda -arch=sm_80")
    (kernel,) = program.kernels
    gemm = match_gemm(kernel.body)
    assert gemm is not None
    assert gemm.sizes == mnk
    assert (len(gemm.ms), len(gemm.ns), len(gemm.ks)) == outer
    assert not gemm.batch
    assert gemm.guarded == bool(attrs.get("pads"))


def test_batched_matmul_reads_as_gemm():
    """A batch axis only A has joins M; one both factors have stays a batch."""
    model = node_model("MatMul", {"a": f32(2, 3, 20, 17), "b": f32(3, 17, 130)})
    (kernel,) = lower_model(model, "cuda -arch=sm_80").kernels
    gemm = match_gemm(kernel.body)
    assert gemm is not None and gemm.sizes == (2 * 20, 130, 17) and len(gemm.batch) == 1


def test_barrier_after_a_thread_dependent_let_is_uniform():
    """Binding a value of the thread index is not a branch: a barrier after it is reached by all threads;
    a barrier under a condition on that value is not."""
    buf = Buffer("o", DType.float32, 64)
    tx, ty = Var("tx"), Var("ty")
    store = Store(buf, tx, Const(0.0, DType.float32))

    def kernel(body):
        return Kernel("k", [buf], For(tx, Const(64, INDEX), Let(ty, Bin("div", tx, Const(16, INDEX)), body),
                                      ForKind.GPU_THREAD_X))  # fmt: skip

    verify_kernel(kernel(Seq([store, Barrier()])), gpu=True)
    with pytest.raises(LoopVerifyError, match="barrier"):
        verify_kernel(kernel(If(Bin("lt", ty, Const(2, INDEX)), Seq([store, Barrier()]))), gpu=True)


def test_grouped_conv_reads_as_one_gemm_per_group():
    """The output channel splits into (group: batch, channel of the group: N)."""
    model = node_model("Conv", {"x": f32(1, 8, 6, 6)}, attrs={"group": 2, "pads": [1, 1, 1, 1]},
                       initializers={"w": f32(32, 4, 3, 3)})  # fmt: skip
    (kernel,) = lower_model(model, "cuda -arch=sm_80").kernels
    gemm = match_gemm(kernel.body)
    assert gemm is not None
    assert gemm.sizes == (36, 16, 4 * 9)
    assert [static_int(lp.extent) for lp in gemm.batch] == [2]
