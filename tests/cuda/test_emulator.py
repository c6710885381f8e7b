"""The CPU emulator of the generated CUDA C (runtime/aic_cuda_emu.h) on hand-written kernels:
barriers, poisoned shared memory, warp shuffles, divergence detection, both thread orders."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from aic.runtime.package import RUNTIME_DIR

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")

KERNELS = r"""
/* each thread writes its slot of shared memory, then reads its right neighbour's */
__global__ void neighbour(float *out, int barrier) {
    AIC_SMEM_DECL(smem);
    float *s = (float *)smem;
    s[threadIdx.x] = (float)(blockIdx.x * 100 + threadIdx.x);
    if (barrier) __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}
__global__ void warp_sum(float *out) {
    float v = (float)threadIdx.x;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    out[threadIdx.x] = v;
}
__global__ void divergent(float *out) {
    if (threadIdx.x < 5) {
        __syncthreads();
        out[threadIdx.x] = 1.0f;
    } else {
        out[threadIdx.x] = 2.0f;
        __syncthreads();
    }
}
static void neighbour__emu(void **p) { neighbour(*(float **)p[0], *(int *)p[1]); }
static void warp_sum__emu(void **p) { warp_sum(*(float **)p[0]); }
static void divergent__emu(void **p) { divergent(*(float **)p[0]); }

int main(int argc, char **argv) {
    float out[128];
    int which = atoi(argv[1]), flag = atoi(argv[2]);
    float *ptr = out;
    void *params[] = {&ptr, &flag};
    if (which == 0) aic_emu::run(neighbour__emu, 1, {2, 1, 1}, {64, 1, 1}, 64 * 4, params);
    if (which == 1) aic_emu::run(warp_sum__emu, 1, {1, 1, 1}, {64, 1, 1}, 0, params);
    if (which == 2) aic_emu::run(divergent__emu, 1, {1, 1, 1}, {32, 1, 1}, 0, params);
    for (int i = 0; i < 128; i++) printf("%g\n", out[i]);
    return 0;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("emu")
    (folder / "k.cu").write_text(KERNELS)
    exe = folder / "k"
    subprocess.run(["g++", "-std=c++17", "-O1", "-w", "-include", str(RUNTIME_DIR / "aic_cuda_emu.h"), "-x", "c++",
                    str(folder / "k.cu"), "-o", str(exe)], check=True)  # fmt: skip
    return exe


def run(program: Path, which: int, flag: int, order: str) -> subprocess.CompletedProcess:
    env = {"AIC_EMU_ORDER": order, "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(program), str(which), str(flag)], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_barrier_makes_shared_memory_visible(program, order):
    values = [float(x) for x in run(program, 0, 1, order).stdout.split()[:128]]
    assert values == [b * 100 + (t + 1) % 64 for b in range(2) for t in range(64)]


@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_missing_barrier_reads_poisoned_shared_memory(program, order):
    out = run(program, 0, 0, order).stdout.split()[:128]
    assert any("nan" in x for x in out)  # some thread read a slot no thread had written yet in this block


def test_warp_shuffles(program):
    values = [float(x) for x in run(program, 1, 0, "forward").stdout.split()[:64]]
    assert values == [sum(range(32)), *[sum(range(32))] * 31, *[sum(range(32, 64))] * 32]


def test_divergent_barrier_aborts_with_a_message(program):
    result = run(program, 2, 0, "forward")
    assert result.returncode != 0
    assert "divergent barrier" in result.stderr
