"""Mutated models: a seed model (seeds.py) with one to three random defects, as bytes.

Mutations change attributes (values, kinds, missing, unknown), input and output shapes
and element types, initializer values and dims, node inputs and outputs (dropped,
duplicated, renamed), nodes (dropped, duplicated, op swapped), the opset, and the
serialized bytes (truncated, flipped). Model `i` of seed `s` is always the same.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper as h

from .seeds import SEEDS

A = onnx.AttributeProto
INTS = [-(2**40), -(2**31), -3, -2, -1, 0, 1, 2, 3, 4, 5, 7, 64, 2**31, 2**40]
FLOATS = [float("nan"), float("inf"), -float("inf"), -1.0, 0.0, 1e-30, 0.5, 2.0, 1e30]
DIMS = [0, 1, 2, 3, 7, 2**31, 2**32, -1, "n"]
ELEM_TYPES = [0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 13, 16, 8, 14, 17, 21, 33, 99]
OPS = ["Relu", "Neg", "Add", "Mul", "MatMul", "Concat", "Gather", "Reshape", "Transpose", "Softmax", "Identity",
       "Slice", "Squeeze", "Unsqueeze", "Sum", "Expand", "Conv", "ReduceMean", "TopK", "Cast", "If", "Loop",
       "Foo"]  # fmt: skip

Mutation = Callable[[onnx.ModelProto, random.Random], None]


def mutated_model(seed: int, index: int) -> tuple[str, bytes]:
    """(description, serialized model) of mutant `index` of the run seeded `seed`."""
    rng = random.Random(seed * 1_000_003 + index)
    name = rng.choice(sorted(SEEDS))
    proto = SEEDS[name]()
    applied = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        mutation = rng.choice(MUTATIONS)
        applied.append(mutation.__name__)
        mutation(proto, rng)
    data = proto.SerializeToString()
    if rng.random() < 0.1:
        which = rng.choice(BYTE_MUTATIONS)
        applied.append(which.__name__)
        data = which(data, rng)
    return f"{name}: {', '.join(applied)}", data


def _graphs(proto: onnx.ModelProto) -> list[onnx.GraphProto]:
    found = [proto.graph]
    for g in found:
        for node in g.node:
            for attr in node.attribute:
                if attr.type == A.GRAPH:
                    found.append(attr.g)
    return found


def _node(proto: onnx.ModelProto, rng: random.Random) -> onnx.NodeProto | None:
    nodes = [n for g in _graphs(proto) for n in g.node]
    return rng.choice(nodes) if nodes else None


def attr_value(proto, rng):
    node = _node(proto, rng)
    attrs = [a for a in node.attribute if a.type in (A.INT, A.INTS, A.FLOAT, A.STRING)] if node else []
    if not attrs:
        return
    attr = rng.choice(attrs)
    if attr.type == A.INT:
        attr.i = rng.choice(INTS)
    elif attr.type == A.INTS:
        values = [rng.choice(INTS) for _ in range(rng.choice([0, 1, len(attr.ints), len(attr.ints) + 1]))]
        del attr.ints[:]
        attr.ints.extend(values)
    elif attr.type == A.FLOAT:
        attr.f = rng.choice(FLOATS)
    else:
        attr.s = rng.choice([b"", b"reflect", b"nonsense", b"\xff\xfe"])


def attr_kind(proto, rng):
    node = _node(proto, rng)
    if node is not None and node.attribute:
        attr = rng.choice(node.attribute)
        if attr.type != A.GRAPH:
            replacement = rng.choice([h.make_attribute(attr.name, [1, 2]), h.make_attribute(attr.name, 1.5),
                                      h.make_attribute(attr.name, "x"), h.make_attribute(attr.name, 3)])  # fmt: skip
            attr.CopyFrom(replacement)


def attr_drop(proto, rng):
    node = _node(proto, rng)
    if node is not None and node.attribute:
        del node.attribute[rng.randrange(len(node.attribute))]


def attr_add(proto, rng):
    node = _node(proto, rng)
    if node is not None:
        name = rng.choice(["axis", "perm", "keepdims", "bogus", "to", "pads", "alpha"])
        if all(a.name != name for a in node.attribute):
            node.attribute.append(h.make_attribute(name, rng.choice([rng.choice(INTS), [0, 1], 0.5])))


def _value_infos(proto, rng, outputs: bool):
    g = rng.choice(_graphs(proto))
    infos = list(g.output if outputs else g.input)
    return rng.choice(infos) if infos else None


def input_shape(proto, rng):
    info = _value_infos(proto, rng, outputs=rng.random() < 0.3)
    if info is None or not info.type.HasField("tensor_type"):
        return
    shape = info.type.tensor_type.shape
    dims = list(shape.dim)
    choice = rng.random()
    if choice < 0.2 and dims:
        del shape.dim[rng.randrange(len(dims))]
    elif choice < 0.3:
        shape.dim.add().dim_value = rng.choice([1, 2])
    elif choice < 0.35:
        info.type.tensor_type.ClearField("shape")
    elif dims:
        d = shape.dim[rng.randrange(len(dims))]
        value = rng.choice(DIMS)
        if isinstance(value, str):
            d.dim_param = value
        else:
            d.dim_value = value


def elem_type(proto, rng):
    if rng.random() < 0.6:
        info = _value_infos(proto, rng, outputs=rng.random() < 0.3)
        if info is not None and info.type.HasField("tensor_type"):
            info.type.tensor_type.elem_type = rng.choice(ELEM_TYPES)
    elif proto.graph.initializer:
        rng.choice(proto.graph.initializer).data_type = rng.choice(ELEM_TYPES)


def init_values(proto, rng):
    """Any value but a Loop's trip count: a loop of 2^40 legal iterations never ends."""
    inits = [t for t in proto.graph.initializer if t.name != "n"]
    if not inits:
        return
    tensor = rng.choice(inits)
    try:
        array = onnx.numpy_helper.to_array(tensor).copy()
    except Exception:  # its dims or type were mutated already
        return
    if array.size:
        flat = array.reshape(-1)
        for _ in range(rng.choice([1, 2])):
            value = rng.choice(INTS) if array.dtype.kind in "iu" else rng.choice(FLOATS)
            flat[rng.randrange(flat.size)] = np.clip(value, *_range(array.dtype))
    try:
        tensor.CopyFrom(onnx.numpy_helper.from_array(array, tensor.name))
    except Exception:  # a type numpy_helper cannot write back
        return


def _range(dtype: np.dtype) -> tuple:
    if dtype.kind in "iu":
        return np.iinfo(dtype).min, np.iinfo(dtype).max
    return -np.inf, np.inf


def init_dims(proto, rng):
    inits = list(proto.graph.initializer)
    if inits:
        tensor = rng.choice(inits)
        choice = rng.random()
        if choice < 0.4 and tensor.dims:
            tensor.dims[rng.randrange(len(tensor.dims))] = rng.choice([0, 1, 2, 5, 2**33])
        elif choice < 0.7:
            tensor.dims.append(rng.choice([1, 2]))
        else:
            tensor.raw_data = tensor.raw_data[: rng.randrange(len(tensor.raw_data) + 1)]


def drop_input(proto, rng):
    node = _node(proto, rng)
    if node is not None and node.input:
        i = rng.randrange(len(node.input))
        if rng.random() < 0.5:
            del node.input[i]
        else:
            node.input[i] = ""


def dup_input(proto, rng):
    node = _node(proto, rng)
    if node is not None and node.input:
        node.input.append(rng.choice(node.input))


def rename(proto, rng):
    node = _node(proto, rng)
    if node is None:
        return
    names = node.output if rng.random() < 0.5 else node.input
    if names:
        names[rng.randrange(len(names))] = rng.choice(["nowhere", "x", "y", "t", "", "é" * 3])


def drop_node(proto, rng):
    g = rng.choice(_graphs(proto))
    if g.node:
        del g.node[rng.randrange(len(g.node))]


def dup_node(proto, rng):
    g = rng.choice(_graphs(proto))
    if g.node:
        g.node.append(rng.choice(g.node))


def swap_op(proto, rng):
    node = _node(proto, rng)
    if node is not None:
        node.op_type = rng.choice(OPS)


def graph_io(proto, rng):
    g = proto.graph
    choice = rng.random()
    if choice < 0.3 and g.input:
        g.input.append(rng.choice(g.input))
    elif choice < 0.6 and g.output:
        del g.output[rng.randrange(len(g.output))]
    elif g.initializer:
        g.initializer.append(rng.choice(g.initializer))


def opset(proto, rng):
    proto.opset_import[0].version = rng.choice([1, 6, 7, 9, 11, 13, 15, 18, 21, 23, 30])
    if rng.random() < 0.2:
        proto.ir_version = rng.choice([0, 3, 4, 7, 11, 99])


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice([1, 2, 4])):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


BYTE_MUTATIONS = [truncate, flip]
MUTATIONS: list = [
    attr_value, attr_value, attr_kind, attr_drop, attr_add, input_shape, input_shape, elem_type, init_values,
    init_values, init_dims, drop_input, dup_input, rename, drop_node, dup_node, swap_op, graph_io, opset,
]  # fmt: skip
