"""Scaled dot-product attention as one SoftmaxAttention kernel: the pattern the exporters write is
recognised (and left alone where fusing would change what is stored), and the compiled kernel
matches onnxruntime within 1e-5 relative (the fused kernel divides by the softmax sum after the
second product, not before)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from aic.compiler.passes import optimize
from aic.compiler.passes.fuse_attention import MAX_KEYS
from aic.compiler.pipeline import lower_model
from aic.frontend.onnx import load_model
from aic.ir import get_op
from onnx import TensorProto, helper

import aic
from tests.onnx_util import assert_close, run_ort


def attention_model(batch: tuple[int, ...], sq: int, sk: int, d: int, dv: int, scale: str = "mul",
                    mask: tuple[int, ...] | None = None, kv_batch: tuple[int, ...] | None = None,
                    scores_out: bool = False, bias: tuple[int, ...] | None = None) -> onnx.ModelProto:
    """MatMul(q, kt) [* or / a scalar] [+ bias] [+ mask] -> Softmax(-1) -> MatMul(., v), as torch exports
    attention (T5: a relative position bias, then the padding mask)."""
    kv_batch = batch if kv_batch is None else kv_batch
    inputs = [helper.make_tensor_value_info("q", TensorProto.FLOAT, [*batch, sq, d]),
              helper.make_tensor_value_info("kt", TensorProto.FLOAT, [*kv_batch, d, sk]),
              helper.make_tensor_value_info("v", TensorProto.FLOAT, [*kv_batch, sk, dv])]
    inits = [onnx.numpy_helper.from_array(np.array(d**0.5 if scale == "div" else d**-0.5, np.float32), "s")]
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["p"])]
    x = "p"
    if scale != "none":
        nodes.append(helper.make_node("Div" if scale == "div" else "Mul", ["p", "s"], ["ps"]))
        x = "ps"
    if bias is not None:  # an input, as T5's bias computed from the positions (constants would be folded)
        inputs.append(helper.make_tensor_value_info("b", TensorProto.FLOAT, bias))
        nodes.append(helper.make_node("Add", [x, "b"], ["pb"]))
        x = "pb"
    if mask is not None:
        causal = np.triu(np.full((sq, sk), -1e4, np.float32), 1)  # a 1-D mask: the last query row's
        inits.append(onnx.numpy_helper.from_array(np.broadcast_to(causal[-1] if len(mask) == 1 else causal,
                                                                  mask).copy(), "m"))
        nodes.append(helper.make_node("Add", ["m", x], ["pm"]))
        x = "pm"
    nodes += [helper.make_node("Softmax", [x], ["a"], axis=-1), helper.make_node("MatMul", ["a", "v"], ["y"])]
    outputs = [onnx.ValueInfoProto(name="y")] + ([onnx.ValueInfoProto(name="a")] if scores_out else [])
    graph = helper.make_graph(nodes, "attention", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def feeds_for(model: onnx.ModelProto, rng: np.random.Generator) -> dict[str, np.ndarray]:
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    return {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}


def fused_ops(model: onnx.ModelProto) -> list[str]:
    graph, _ = optimize(load_model(model), 2)
    return [n.op for n in graph.nodes]


CASES = {
    "whisper-like": dict(batch=(1, 2), sq=50, sk=50, d=64, dv=64),
    "causal-mask-div": dict(batch=(1, 3), sq=13, sk=37, d=16, dv=24, scale="div", mask=(1, 1, 13, 37)),
    "full-mask-no-scale": dict(batch=(2, 2), sq=7, sk=70, d=5, dv=33, scale="none", mask=(2, 2, 7, 70)),
    "row-mask-broadcast-kv": dict(batch=(2, 3), sq=6, sk=40, d=8, dv=8, mask=(40,), kv_batch=(1, 3)),
    "t5-bias-then-mask": dict(batch=(1, 4), sq=9, sk=9, d=8, dv=8, scale="none", bias=(1, 4, 9, 9), mask=(1, 1, 9, 9)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_attention_matches_onnxruntime(rng, case):
    model = attention_model(**case)
    assert "SoftmaxAttention" in fused_ops(model) and "Softmax" not in fused_ops(model)
    feeds = feeds_for(model, rng)
    (expected,) = run_ort(model, feeds)
    (actual,) = aic.compile(model, num_threads=2, cache=False).run(None, feeds)
    assert_close(actual, expected, 1e-5, 1e-6, "attention")


def test_reference_matches_onnxruntime(rng):
    model = attention_model(**CASES["causal-mask-div"])
    feeds = feeds_for(model, rng)
    mask = onnx.numpy_helper.to_array(model.graph.initializer[1])
    (out,) = get_op("SoftmaxAttention").reference([feeds["q"], feeds["kt"], feeds["v"], mask], {"scale": 0.25})
    assert_close(out, run_ort(model, feeds)[0], 1e-5, 1e-6, "reference")


def test_stored_scores_and_long_keys_are_not_fused(rng):
    """Probabilities read outside the pattern must still be stored; more keys than MAX_KEYS do not fit the
    kernel's stack rows."""
    shown = attention_model(batch=(1, 2), sq=6, sk=8, d=4, dv=4, scores_out=True)
    assert "SoftmaxAttention" not in fused_ops(shown)
    feeds = feeds_for(shown, rng)
    for a, e in zip(aic.compile(shown, cache=False).run(None, feeds), run_ort(shown, feeds)):
        assert_close(a, e, 1e-5, 1e-6, "unfused attention")
    assert "SoftmaxAttention" not in fused_ops(attention_model(batch=(1,), sq=1, sk=MAX_KEYS + 1, d=4, dv=4))


def test_cuda_keeps_the_unfused_products():
    """The fused kernel's parallelism (batch x heads) is too little for a GPU grid: cuda compiles the pattern as
    before."""
    model = attention_model(**CASES["causal-mask-div"])
    groups = [c.attrs.get("group", "") for c in lower_model(model, "cuda").calls]
    assert "SoftmaxAttention" not in groups and any("Softmax" in g for g in groups)
    assert "SoftmaxAttention" in [c.attrs.get("group", "") for c in lower_model(model).calls]


def test_index_only_producers_fuse_into_the_kernel(rng):
    """kt = Transpose(k) is read in place by the attention kernel (no transpose kernel of its own); an elementwise
    producer (q + bias) is not, since every element of q is read once per tile of keys."""
    batch, sq, sk, d = (1, 2), 9, 21, 8
    inputs = [helper.make_tensor_value_info("q", TensorProto.FLOAT, [*batch, sq, d]),
              helper.make_tensor_value_info("k", TensorProto.FLOAT, [*batch, sk, d]),
              helper.make_tensor_value_info("v", TensorProto.FLOAT, [*batch, sk, d])]
    bias = onnx.numpy_helper.from_array(rng.standard_normal(d).astype(np.float32), "b")
    scale = onnx.numpy_helper.from_array(np.array(d**-0.5, np.float32), "s")
    nodes = [helper.make_node("Add", ["q", "b"], ["qb"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["qb", "kt"], ["p"]), helper.make_node("Mul", ["p", "s"], ["ps"]),
             helper.make_node("Softmax", ["ps"], ["a"], axis=-1), helper.make_node("MatMul", ["a", "v"], ["y"])]
    graph = helper.make_graph(nodes, "attention", inputs, [onnx.ValueInfoProto(name="y")], [bias, scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    groups = [c.attrs.get("group", "") for c in lower_model(model).calls]
    assert "Transpose+SoftmaxAttention" in groups and "Add" in groups and len(groups) == 2, groups
    feeds = feeds_for(model, rng)
    (actual,) = aic.compile(model, num_threads=2, cache=False).run(None, feeds)
    assert_close(actual, run_ort(model, feeds)[0], 1e-5, 1e-6, "attention over a transposed k")


def test_split_of_one_projection_is_read_in_place(rng):
    """q, k, v sliced from one [1, S, 3, H, D] projection (Transpose, Slice, Squeeze, as torch exports
    `qkv.view(...).permute(2, 0, 3, 1, 4)` and indexing) are read by the attention kernel in place: the
    Squeezes are looked through, so the Transpose and Slices fuse into it and the whole is one kernel."""
    s, h, d = 19, 2, 8
    qkv = helper.make_tensor_value_info("qkv", TensorProto.FLOAT, [1, s, 3, h, d])
    inits = [onnx.numpy_helper.from_array(np.array(v, np.int64), n)
             for n, v in (("zero", [0]), ("one", [1]), ("two", [2]), ("three", [3]))]
    inits.append(onnx.numpy_helper.from_array(np.array(d**-0.5, np.float32), "s"))
    nodes = [helper.make_node("Transpose", ["qkv"], ["t"], perm=[2, 0, 3, 1, 4])]
    for name, (lo, hi) in zip("qkv", (("zero", "one"), ("one", "two"), ("two", "three"))):
        nodes += [helper.make_node("Slice", ["t", lo, hi, "zero"], [f"{name}5"]),
                  helper.make_node("Squeeze", [f"{name}5", "zero"], [f"{name}4"])]
    nodes += [helper.make_node("Transpose", ["k4"], ["kt"], perm=[0, 1, 3, 2]),
              helper.make_node("MatMul", ["q4", "kt"], ["p"]), helper.make_node("Mul", ["p", "s"], ["ps"]),
              helper.make_node("Softmax", ["ps"], ["a"], axis=-1), helper.make_node("MatMul", ["a", "v4"], ["y"])]
    graph = helper.make_graph(nodes, "attention", [qkv], [onnx.ValueInfoProto(name="y")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    groups = [c.attrs.get("group", "") for c in lower_model(model).calls]
    assert len(groups) == 1 and groups[0].endswith("SoftmaxAttention"), groups
    feeds = feeds_for(model, rng)
    (actual,) = aic.compile(model, num_threads=2, cache=False).run(None, feeds)
    (expected,) = run_ort(model, feeds)
    assert actual.shape == expected.shape == (1, h, s, d)
    assert_close(actual, expected, 1e-5, 1e-6, "attention over slices of one projection")
