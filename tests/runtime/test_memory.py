"""A process that compiles, loads, runs and closes models again and again stays flat: the
library is unmapped at close, and LLVM's per-compile leak stays in its helper process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CYCLES = textwrap.dedent("""
    import gc, os
    import numpy as np
    import onnx
    from onnx import helper
    import aic

    f, i64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Gather", ["r", "i"], ["y"], axis=0)], "m",
        [helper.make_tensor_value_info("x", f, [4, 8]), helper.make_tensor_value_info("i", i64, [3])],
        [helper.make_tensor_value_info("y", f, [3, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    feeds = {"x": np.ones((4, 8), np.float32), "i": np.array([0, 1, 3])}

    def rss():
        gc.collect()
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def cycle():
        module = aic.compile(model)
        module.run(None, feeds)
        module.close()

    for _ in range(WARM):
        cycle()
    start = rss()
    for _ in range(COUNT):
        cycle()
    maps = open("/proc/self/maps").read()
    print((rss() - start) / COUNT / 1024, sum(".so" in line and "aic-" in line for line in maps.splitlines()))
""")


def test_rss_is_flat_over_compile_load_cycles():
    script = CYCLES.replace("WARM", "20").replace("COUNT", "40")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    per_cycle, mapped = proc.stdout.split()
    assert int(mapped) == 0  # every model library was unmapped
    assert float(per_cycle) < 20, f"RSS grows {float(per_cycle):.1f} KiB per compile+load cycle"
