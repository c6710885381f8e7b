"""The cost of the run-time index checks (compiler/lower/checks.py) on Gather-heavy models.

Each model is compiled twice in this process, with the checks and with them switched off
(by patching the lowering, for this measurement only), and the two modules are timed
interleaved run by run (alternating which goes first); medians of `--runs` runs after warm-ups, one thread.

    python -m bench.index_checks [--runs 200]

Models (onnx.helper, random weights): BERT-base embeddings (word, position and token-type
Gathers, sum, LayerNorm; sequence 128), the embeddings plus one BERT-base encoder layer, and a
worst case: GatherElements over a 512x512 tensor (one index per output element).
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import contextmanager
from unittest import mock

import numpy as np
import onnx
from onnx import helper, numpy_helper

import aic

F, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
SEQ, HIDDEN, VOCAB, FFN = 128, 768, 30522, 3072


def _weights(rng: np.random.Generator, **shapes: tuple[int, ...]) -> list[onnx.TensorProto]:
    return [numpy_helper.from_array((rng.standard_normal(s) * 0.02).astype(np.float32), n) for n, s in shapes.items()]


def embeddings(layers: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = _weights(rng, word=(VOCAB, HIDDEN), pos=(512, HIDDEN), types=(2, HIDDEN), gamma=(HIDDEN,), beta=(HIDDEN,))
    inits.append(numpy_helper.from_array(np.arange(SEQ, dtype=np.int64)[None], "positions"))
    nodes = [
        helper.make_node("Gather", ["word", "ids"], ["e_word"]),
        helper.make_node("Gather", ["pos", "positions"], ["e_pos"]),
        helper.make_node("Gather", ["types", "type_ids"], ["e_type"]),
        helper.make_node("Add", ["e_word", "e_pos"], ["e_sum"]),
        helper.make_node("Add", ["e_sum", "e_type"], ["e_all"]),
        helper.make_node("LayerNormalization", ["e_all", "gamma", "beta"], ["h0"], axis=-1),
    ]
    out = "h0"
    for k in range(layers):
        out = _encoder_layer(nodes, inits, rng, out, f"l{k}")
    graph = helper.make_graph(nodes, "bert_embeddings", [helper.make_tensor_value_info("ids", I64, [1, SEQ]),
                              helper.make_tensor_value_info("type_ids", I64, [1, SEQ])],
                              [helper.make_tensor_value_info(out, F, [1, SEQ, HIDDEN])], inits)  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def _encoder_layer(nodes: list, inits: list, rng: np.random.Generator, x: str, p: str) -> str:
    inits += _weights(rng, **{f"{p}_{n}": (HIDDEN, HIDDEN) for n in "qkvo"}, **{f"{p}_up": (HIDDEN, FFN)},
                      **{f"{p}_down": (FFN, HIDDEN)}, **{f"{p}_g{i}": (HIDDEN,) for i in (1, 2)},
                      **{f"{p}_b{i}": (HIDDEN,) for i in (1, 2)})  # fmt: skip
    inits.append(numpy_helper.from_array(np.array([1, SEQ, 12, 64], dtype=np.int64), f"{p}_heads"))
    inits.append(numpy_helper.from_array(np.array([1, SEQ, HIDDEN], dtype=np.int64), f"{p}_flat"))
    inits.append(numpy_helper.from_array(np.array(0.125, dtype=np.float32), f"{p}_scale"))
    n = nodes.append
    for name in "qkv":
        n(helper.make_node("MatMul", [x, f"{p}_{name}"], [f"{p}_{name}m"]))
        n(helper.make_node("Reshape", [f"{p}_{name}m", f"{p}_heads"], [f"{p}_{name}r"]))
        perm = [0, 2, 3, 1] if name == "k" else [0, 2, 1, 3]
        n(helper.make_node("Transpose", [f"{p}_{name}r"], [f"{p}_{name}t"], perm=perm))
    n(helper.make_node("MatMul", [f"{p}_qt", f"{p}_kt"], [f"{p}_s"]))
    n(helper.make_node("Mul", [f"{p}_s", f"{p}_scale"], [f"{p}_ss"]))
    n(helper.make_node("Softmax", [f"{p}_ss"], [f"{p}_a"], axis=-1))
    n(helper.make_node("MatMul", [f"{p}_a", f"{p}_vt"], [f"{p}_c"]))
    n(helper.make_node("Transpose", [f"{p}_c"], [f"{p}_ct"], perm=[0, 2, 1, 3]))
    n(helper.make_node("Reshape", [f"{p}_ct", f"{p}_flat"], [f"{p}_cf"]))
    n(helper.make_node("MatMul", [f"{p}_cf", f"{p}_o"], [f"{p}_om"]))
    n(helper.make_node("Add", [f"{p}_om", x], [f"{p}_r1"]))
    n(helper.make_node("LayerNormalization", [f"{p}_r1", f"{p}_g1", f"{p}_b1"], [f"{p}_h1"], axis=-1))
    n(helper.make_node("MatMul", [f"{p}_h1", f"{p}_up"], [f"{p}_u"]))
    n(helper.make_node("Gelu", [f"{p}_u"], [f"{p}_gu"]))
    n(helper.make_node("MatMul", [f"{p}_gu", f"{p}_down"], [f"{p}_d"]))
    n(helper.make_node("Add", [f"{p}_d", f"{p}_h1"], [f"{p}_r2"]))
    n(helper.make_node("LayerNormalization", [f"{p}_r2", f"{p}_g2", f"{p}_b2"], [f"{p}_h2"], axis=-1))
    return f"{p}_h2"


def gather_elements(size: int = 512) -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("GatherElements", ["x", "i"], ["y"], axis=1)], "gather_elements",
                              [helper.make_tensor_value_info("x", F, [size, size]),
                               helper.make_tensor_value_info("i", I64, [size, size])],
                              [helper.make_tensor_value_info("y", F, [size, size])])  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@contextmanager
def checks_off():
    from aic.compiler.lower import checks, index, vision

    def skip(*args: object, **kwargs: object) -> None:
        return None

    with mock.patch.object(checks, "check_indices", skip), mock.patch.object(index, "check_indices", skip), \
            mock.patch.object(vision, "check_indices", skip):  # fmt: skip
        yield


def median_ms(modules: list, feeds: dict, runs: int) -> list[float]:
    times: list[list[float]] = [[] for _ in modules]
    for k in range(runs + 5):
        order = list(zip(modules, times))
        for m, t in order if k % 2 else order[::-1]:  # alternate which runs first
            start = time.perf_counter()
            m.run(None, feeds)
            if k >= 5:
                t.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    cases = [
        ("BERT-base embeddings", embeddings(0), {"ids": rng.integers(0, VOCAB, (1, SEQ)),
                                                 "type_ids": rng.integers(0, 2, (1, SEQ))}),
        ("embeddings + 1 encoder layer", embeddings(1), {"ids": rng.integers(0, VOCAB, (1, SEQ)),
                                                         "type_ids": rng.integers(0, 2, (1, SEQ))}),
        ("GatherElements 512x512", gather_elements(), {"x": rng.random((512, 512), dtype=np.float32),
                                                       "i": rng.integers(-512, 512, (512, 512))}),
    ]  # fmt: skip
    print("| model | checked indices | with checks ms | without ms | cost |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, model, feeds in cases:
        checked = aic.compile(model, num_threads=1)
        with checks_off():
            unchecked = aic.compile(model, num_threads=1)
        np.testing.assert_array_equal(checked.run(None, feeds)[0], unchecked.run(None, feeds)[0])
        count = sum(a.size for n, a in feeds.items() if n != "x")
        with_ms, without_ms = median_ms([checked, unchecked], feeds, args.runs)
        print(f"| {name} | {count} | {with_ms:.3f} | {without_ms:.3f} | {100 * (with_ms / without_ms - 1):+.1f}% |")


if __name__ == "__main__":
    main()
