"""Whole small models built with onnx.helper, optimised at -O2 and compared
with onnxruntime on the original model (1e-4 relative: GELU, LayerNorm and
Softmax are evaluated as single ops instead of their float32 spelled-out form,
and folded batch norms round differently)."""

from __future__ import annotations

import math

import numpy as np
import onnx
from aic.compiler.passes import optimize
from aic.frontend.onnx import load_model
from aic.ir import Graph, run_graph
from onnx import TensorProto, helper, numpy_helper

from ..onnx_util import assert_close, run_ort
from .util import ops

OPSET = 18


class ModelBuilder:
    """Nodes and initializers of one ONNX graph, with generated names."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, array, hint: str = "c") -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, *shape: int, scale: float = 0.3) -> str:
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32), "w")

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=self.name(op_type), **attrs))
        return out

    def model(self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "model", inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model

    # composite spellings, as exporters write them

    def linear(self, x: str, n_in: int, n_out: int) -> str:
        return self.op("Add", self.op("MatMul", x, self.weight(n_in, n_out)), self.weight(n_out))

    def layernorm(self, x: str, width: int, out: str | None = None) -> str:
        axes = self.const(np.array([-1], np.int64))
        d = self.op("Sub", x, self.op("ReduceMean", x, axes))
        var = self.op("ReduceMean", self.op("Pow", d, self.const(np.float32(2))), axes)
        n = self.op("Div", d, self.op("Sqrt", self.op("Add", var, self.const(np.float32(1e-5)))))
        gamma = self.const((1 + 0.1 * self.rng.standard_normal(width)).astype(np.float32))
        return self.op("Add", self.op("Mul", n, gamma), self.weight(width), out=out)

    def gelu(self, x: str) -> str:
        erf = self.op("Erf", self.op("Div", x, self.const(np.float32(math.sqrt(2)))))
        return self.op(
            "Mul", self.op("Mul", x, self.op("Add", erf, self.const(np.float32(1)))), self.const(np.float32(0.5))
        )

    def softmax(self, x: str) -> str:
        axes = self.const(np.array([-1], np.int64))
        e = self.op("Exp", self.op("Sub", x, self.op("ReduceMax", x, axes)))
        return self.op("Div", e, self.op("ReduceSum", e, axes))

    def dims(self, x: str, *indices: int) -> list[str]:
        """Unsqueezed dims of x (Shape -> Gather -> Unsqueeze), as torch exports view sizes."""
        shape = self.op("Shape", x)
        axes = self.const(np.array([0], np.int64))
        return [
            self.op("Unsqueeze", self.op("Gather", shape, self.const(np.array(i, np.int64))), axes) for i in indices
        ]


def bert_block(rng: np.random.Generator, heads: int = 2, width: int = 16) -> onnx.ModelProto:
    """One encoder layer: attention with torch-style dynamic reshapes, dropouts,
    residuals, spelled-out LayerNorm, Softmax and GELU."""
    m = ModelBuilder(rng)
    head = width // heads
    x = "x"
    batch, seq = m.dims(x, 0, 1)
    split = m.op(
        "Concat", batch, seq, m.const(np.array([heads], np.int64)), m.const(np.array([head], np.int64)), axis=0
    )

    def heads_of(v: str, perm: list[int]) -> str:
        return m.op("Transpose", m.op("Reshape", v, split), perm=perm)

    q = heads_of(m.linear(x, width, width), [0, 2, 1, 3])
    k = heads_of(m.linear(x, width, width), [0, 2, 3, 1])
    v = heads_of(m.linear(x, width, width), [0, 2, 1, 3])
    scores = m.op("Div", m.op("MatMul", q, k), m.const(np.float32(math.sqrt(head))))
    probs = m.op("Dropout", m.softmax(scores))
    context = m.op("Transpose", m.op("MatMul", probs, v), perm=[0, 2, 1, 3])
    merge = m.op("Concat", batch, seq, m.const(np.array([width], np.int64)), axis=0)
    attended = m.op("Dropout", m.linear(m.op("Reshape", context, merge), width, width))
    h = m.layernorm(m.op("Add", m.op("Identity", x), attended), width)
    ffn = m.op("Dropout", m.linear(m.gelu(m.linear(h, width, 4 * width)), 4 * width, width))
    m.layernorm(m.op("Add", h, ffn), width, out="y")
    info = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", width])
    return m.model([info], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", width])])


def cnn(rng: np.random.Generator) -> onnx.ModelProto:
    """NHWC input transposed to NCHW, Conv+BatchNorm+Relu, Conv+Mul+Add (Keras
    batch norm), a transpose pair around a Relu, pooling, Gemm+BatchNorm, Softmax."""
    m = ModelBuilder(rng)
    x = m.op("Transpose", "x", perm=[0, 3, 1, 2])

    def bn(v: str, channels: int) -> str:
        params = [1 + 0.1 * rng.standard_normal(channels), rng.standard_normal(channels), rng.standard_normal(channels)]
        params.append(rng.random(channels) + 0.5)
        return m.op("BatchNormalization", v, *(m.const(p.astype(np.float32)) for p in params), epsilon=1e-3)

    h = m.op("Relu", bn(m.op("Conv", x, m.weight(8, 3, 3, 3), m.weight(8), pads=[1, 1, 1, 1]), 8))
    conv = m.op("Conv", h, m.weight(8, 8, 3, 3), pads=[1, 1, 1, 1])
    keras = m.op("Add", m.op("Mul", conv, m.const(rng.random((8, 1, 1)).astype(np.float32) + 0.5)), m.weight(8, 1, 1))
    nhwc = m.op("Relu", m.op("Transpose", m.op("Identity", keras), perm=[0, 2, 3, 1]))
    h = m.op("Dropout", m.op("Transpose", nhwc, perm=[0, 3, 1, 2]))
    pooled = m.op("Flatten", m.op("GlobalAveragePool", h))
    logits = bn(m.op("Gemm", pooled, m.weight(4, 8), m.weight(4), transB=1), 4)
    m.op("Softmax", logits, out="y")
    info = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8, 8, 3])
    return m.model([info], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])])


def _check_against_ort(model: onnx.ModelProto, optimized: Graph, feeds: dict[str, np.ndarray]) -> None:
    expected = run_ort(model, feeds)
    actual = run_graph(optimized, feeds)
    assert [v.name for v in optimized.outputs] == [o.name for o in model.graph.output]
    for a, e in zip(actual, expected):
        assert_close(a, e, rtol=1e-4, atol=1e-5)


def _foldable(graph: Graph) -> list[str]:
    """Nodes constant folding could still remove."""
    return [
        n.describe()
        for n in graph.nodes
        if all(v is None or v.is_const for v in n.inputs)
        or any(o.sym is not None and all(isinstance(d, int) for d in o.sym) for o in n.outputs)
    ]


def test_bert_block(rng):
    model = bert_block(rng)
    graph = load_model(model)
    optimized, report = optimize(graph, 2, verify_each=True)
    found = ops(optimized)
    assert found.count("Gelu") == 1 and found.count("LayerNormalization") == 2 and found.count("Softmax") == 1
    assert not {"Identity", "Dropout", "Erf", "Sqrt", "Pow", "ReduceMean", "Exp"} & set(found)
    assert not _foldable(optimized)
    assert optimized.outputs[0].type.shape == ("batch", "seq", 16)
    assert report.nodes_after <= report.nodes_before - 25
    for batch, seq in ((1, 5), (3, 2)):
        feeds = {"x": rng.standard_normal((batch, seq, 16)).astype(np.float32)}
        _check_against_ort(model, optimized, feeds)


def test_bert_block_with_static_shapes_folds_all_shape_arithmetic(rng):
    model = bert_block(rng)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_value, dims[1].dim_value = 2, 5
    optimized, _ = optimize(load_model(model), 2, verify_each=True)
    assert not {"Shape", "Gather", "Concat", "Unsqueeze"} & set(ops(optimized))
    _check_against_ort(model, optimized, {"x": rng.standard_normal((2, 5, 16)).astype(np.float32)})


def test_cnn(rng):
    model = cnn(rng)
    optimized, report = optimize(load_model(model), 2, verify_each=True)
    assert ops(optimized) == [
        "Transpose",
        "Conv",
        "Relu",
        "Conv",
        "Relu",
        "GlobalAveragePool",
        "Flatten",
        "Gemm",
        "Softmax",
    ]
    assert report.nodes_after < report.nodes_before
    _check_against_ort(model, optimized, {"x": rng.standard_normal((2, 8, 8, 3)).astype(np.float32)})
