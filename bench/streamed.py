"""Products whose weights come from memory: their floor, and what aic and onnxruntime reach.

    python -m bench.streamed [--shapes 32x1024x4096 32x4096x4096 32x4096x1000] [--rounds 30] [--pause 150]

Prints this core's FMA peak (`aic.peak`) and its streaming read bandwidth (`np.dot` of a 256 MiB vector with
itself, one thread; a lower bound: a C loop of AVX loads reads 10-15% faster), then for each M x K x N product
(MatMul + bias + ReLU built with onnx.helper, random constant weights, 1 thread) the floor
max(FLOPs / peak, weight bytes / bandwidth) and the thread CPU time of aic and onnxruntime, interleaved, after
`--pause` ms idle and back to back: p10 and median, GFLOP/s and % of peak from the median, GB/s of weights.
Weights over the L3 (32 MiB here) come from DRAM on every run either way.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import aic
from aic.peak import measure_peak
from bench.check_interp import relative_error


def product_model(m: int, k: int, n: int, seed: int = 0) -> onnx.ModelProto:
    """relu(x @ w + b) with x [m, k] and constant w [k, n] (scaled so that outputs stay O(1))."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array((rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["z"]),
             helper.make_node("Relu", ["z"], ["y"])]
    graph = helper.make_graph(nodes, "product", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], [w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def read_bandwidth(mib: int = 256) -> float:
    """GB/s of one thread reading `mib` MiB (best of 4)."""
    a = np.ones(mib << 18, np.float32)
    best = 0.0
    for _ in range(4):
        start = time.thread_time()
        np.dot(a, a)
        best = max(best, a.nbytes / (time.thread_time() - start))
    return best / 1e9


def timed(runners: dict, feeds: dict, rounds: int, pause: float) -> dict[str, np.ndarray]:
    """Thread CPU ms of each runner, in turns (the order reversed every other round)."""
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            time.sleep(pause / 1e3)
            start = time.thread_time()
            runners[name](feeds)
            times[name].append((time.thread_time() - start) * 1e3)
    return {name: np.array(v) for name, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", nargs="+", default=["32x1024x4096", "32x4096x4096", "32x4096x1000"])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--pause", type=float, default=150.0, help="milliseconds idle before each run")
    args = p.parse_args()
    peak = measure_peak().gflops_per_core
    bandwidth = read_bandwidth()
    print(f"FMA peak {peak:.1f} GFLOP/s per core, read bandwidth {bandwidth:.1f} GB/s (one thread)")
    for shape in args.shapes:
        m, k, n = map(int, shape.split("x"))
        model = product_model(m, k, n)
        module = aic.compile(model, num_threads=1)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        runners = {"aic": lambda f, mod=module: mod.run(None, f), "ort": lambda f, s=session: s.run(None, f)}
        feeds = {"x": np.random.default_rng(1).random((m, k), dtype=np.float32)}
        ref = session.run(None, feeds)[0]
        err = relative_error(module.run(None, feeds)[0], ref)
        flop, weight_bytes = 2 * m * k * n, 4 * k * n
        floor = max(flop / peak / 1e6, weight_bytes / bandwidth / 1e6)
        print(f"{shape}: {flop / 1e9:.2f} GFLOP, {weight_bytes / 2**20:.0f} MiB of weights, floor {floor:.2f} ms "
              f"({'compute' if flop / peak > weight_bytes / bandwidth else 'bandwidth'}), "
              f"max rel err vs onnxruntime {err:.1e}")
        for pause in (args.pause, 0.0):
            times = timed(runners, feeds, args.rounds, pause)
            for name, t in times.items():
                med = float(np.median(t))
                print(f"  {name:>3} after {pause:3.0f} ms: p10 {np.percentile(t, 10):7.2f} ms, median {med:7.2f} ms = "
                      f"{flop / med / 1e6:5.1f} GFLOP/s ({100 * flop / med / 1e6 / peak:3.0f}% of peak), "
                      f"{weight_bytes / med / 1e6:4.1f} GB/s of weights")
            print(f"  aic/ort after {pause:3.0f} ms: paired median {np.median(times['aic'] / times['ort']):.3f}")


if __name__ == "__main__":
    main()
