"""Small whole models built with onnx.helper and random weights, interpreted by
aic and compared with onnxruntime (rtol 1e-4: float32 chains of a few dozen ops)."""

import numpy as np
import onnx
import pytest
from aic.frontend.onnx import load_model
from aic.ir import verify
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from tests.onnx_util import assert_close, run_interpreter, run_ort

F32 = np.float32
RTOL, ATOL = 1e-4, 1e-5


class Model:
    """A tiny model writer: nodes, random weights, named outputs."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self.count = 0

    def weight(self, shape, scale=0.3, offset=0.0) -> str:
        name = f"w{len(self.weights)}"
        array = (self.rng.standard_normal(shape) * scale + offset).astype(F32)
        self.weights.append(nh.from_array(array, name))
        return name

    def const(self, array) -> str:
        name = f"c{len(self.weights)}"
        self.weights.append(nh.from_array(np.asarray(array), name))
        return name

    def __call__(self, op: str, *inputs: str, outputs: int = 1, **attrs) -> str | list[str]:
        self.count += 1
        names = [f"{op.lower()}{self.count}_{i}" for i in range(outputs)]
        self.nodes.append(h.make_node(op, list(inputs), names, name=f"{op}_{self.count}", **attrs))
        return names[0] if outputs == 1 else names

    def build(self, inputs, output: str, opset: int = 17) -> onnx.ModelProto:
        self.nodes.append(h.make_node("Identity", [output], ["y"]))
        graph = h.make_graph(self.nodes, "model", inputs, [h.make_tensor_value_info("y", T.FLOAT, None)], self.weights)
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
        model.ir_version = 8
        return model


def compare(model, feeds):
    graph = load_model(model)
    verify(graph)
    (actual,) = run_interpreter(model, feeds)
    (expected,) = run_ort(model, feeds)
    assert_close(actual, expected, RTOL, ATOL, "model output")
    return graph


def mlp(rng) -> onnx.ModelProto:
    m = Model(rng)
    x = m("Gemm", "x", m.weight((16, 32)), m.weight(32), transB=0)
    x = m("Relu", x)
    x = m("MatMul", x, m.weight((32, 32)))
    x = m("Add", x, m.weight(32))
    x = m("Tanh", x)
    x = m("Gemm", x, m.weight((10, 32)), m.weight(10), transB=1, alpha=0.5)
    return m.build([h.make_tensor_value_info("x", T.FLOAT, [4, 16])], m("Softmax", x, axis=-1))


def cnn(rng) -> onnx.ModelProto:
    m = Model(rng)
    x = m("Conv", "x", m.weight((8, 3, 3, 3)), m.weight(8), pads=[1, 1, 1, 1])
    x = m("BatchNormalization", x, m.weight(8, 0.1, 1.0), m.weight(8), m.weight(8), m.weight(8, 0.1, 1.0), epsilon=1e-3)
    x = m("Relu", x)
    x = m("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    x = m("Conv", x, m.weight((16, 8, 3, 3)), m.weight(16), strides=[2, 2], pads=[1, 1, 1, 1])
    x = m("Relu", x)
    x = m("GlobalAveragePool", x)
    x = m("Flatten", x, axis=1)
    x = m("Gemm", x, m.weight((5, 16)), m.weight(5), transB=1)
    return m.build([h.make_tensor_value_info("x", T.FLOAT, ["batch", 3, 16, 16])], x)


def layer_norm_primitives(m: Model, x: str, width: int) -> str:
    mean = m("ReduceMean", x, axes=[-1])
    centred = m("Sub", x, mean)
    var = m("ReduceMean", m("Pow", centred, m.const(np.array(2.0, F32))), axes=[-1])
    std = m("Sqrt", m("Add", var, m.const(np.array(1e-5, F32))))
    return m("Add", m("Mul", m("Div", centred, std), m.weight(width, 0.1, 1.0)), m.weight(width))


def gelu_erf(m: Model, x: str) -> str:
    erf = m("Erf", m("Div", x, m.const(np.array(np.sqrt(2.0), F32))))
    return m("Mul", m("Mul", x, m("Add", erf, m.const(np.array(1.0, F32)))), m.const(np.array(0.5, F32)))


def transformer_block(rng, seq=4, width=8, heads=2) -> onnx.ModelProto:
    """Pre-norm attention + MLP with a dynamic batch; heads split with Reshape(0, 0, h, d)
    and merged with a shape computed from Shape/Gather/Concat."""
    m = Model(rng)
    dh = width // heads
    norm = m("LayerNormalization", "x", m.weight(width, 0.1, 1.0), m.weight(width), axis=-1, epsilon=1e-5)

    def split_heads(t: str) -> str:
        t = m("Reshape", t, m.const(np.array([0, 0, heads, dh], np.int64)))
        return m("Transpose", t, perm=[0, 2, 1, 3])

    q, k, v = (split_heads(m("Add", m("MatMul", norm, m.weight((width, width))), m.weight(width))) for _ in range(3))
    scores = m("MatMul", q, m("Transpose", k, perm=[0, 1, 3, 2]))
    scores = m("Div", scores, m.const(np.array(np.sqrt(dh), F32)))
    attn = m("MatMul", m("Softmax", scores, axis=-1), v)
    attn = m("Transpose", attn, perm=[0, 2, 1, 3])
    batch = m("Gather", m("Shape", "x"), m.const(np.array([0], np.int64)), axis=0)
    shape = m("Concat", batch, m.const(np.array([seq, width], np.int64)), axis=0)
    attn = m("Reshape", attn, shape)
    x = m("Add", "x", m("MatMul", attn, m.weight((width, width))))
    hidden = gelu_erf(m, m("MatMul", layer_norm_primitives(m, x, width), m.weight((width, 4 * width))))
    x = m("Add", x, m("MatMul", hidden, m.weight((4 * width, width))))
    return m.build([h.make_tensor_value_info("x", T.FLOAT, ["batch", seq, width])], x)


def test_mlp(rng):
    compare(mlp(rng), {"x": rng.standard_normal((4, 16)).astype(F32)})


@pytest.mark.parametrize("batch", [1, 3])
def test_cnn(rng, batch):
    graph = compare(cnn(rng), {"x": rng.standard_normal((batch, 3, 16, 16)).astype(F32)})
    assert graph.outputs[0].type.shape == ("batch", 5)


@pytest.mark.parametrize("batch", [1, 2])
def test_transformer_block(rng, batch):
    graph = compare(transformer_block(rng), {"x": rng.standard_normal((batch, 4, 8)).astype(F32)})
    assert graph.outputs[0].type.shape == ("batch", 4, 8), "the dynamic batch stays symbolic through the block"
