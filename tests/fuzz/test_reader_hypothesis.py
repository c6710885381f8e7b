"""Property-based fuzzing of the frontend reader: whatever bytes or protobuf fields a
model file holds, `load_model` returns a Graph or raises a FrontendError, never
another exception. Short by default; AIC_FUZZ_EXAMPLES=N runs longer."""

import os

import onnx
import pytest
from aic.frontend.onnx import FrontendError, load_model
from aic.ir import Graph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper as h

from tests.fuzz.seeds import SEEDS

EXAMPLES = int(os.environ.get("AIC_FUZZ_EXAMPLES", "60"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
)
SEED_BYTES = {name: make().SerializeToString() for name, make in SEEDS.items()}


def loads_or_refuses(model) -> None:
    try:
        graph = load_model(model)
    except FrontendError as err:
        assert str(err).strip(), "an empty message"
        return
    assert isinstance(graph, Graph)


@SETTINGS
@given(
    seed=st.sampled_from(sorted(SEED_BYTES)),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6),
    cut=st.floats(0.05, 1),
)
def test_mutated_bytes(tmp_path_factory, seed, edits, cut):
    """Byte flips and truncation of valid model files."""
    data = bytearray(SEED_BYTES[seed][: max(1, int(len(SEED_BYTES[seed]) * cut))])
    for where, value in edits:
        data[int(where * len(data))] = value
    path = tmp_path_factory.mktemp("m") / "model.onnx"
    path.write_bytes(bytes(data))
    loads_or_refuses(path)


names = st.text(st.characters(codec="utf-8"), max_size=8) | st.sampled_from(["x", "y", "t", "", "c"])
dims = st.lists(st.integers(-2, 4) | st.just(2**40) | st.sampled_from(["n", ""]), max_size=4)
elem_types = st.integers(0, 25)
attr_values = (
    st.integers(-(2**63), 2**63 - 1) | st.floats() | st.lists(st.integers(-5, 5), min_size=1, max_size=4) | names
)


@st.composite
def value_infos(draw):
    shape = draw(st.none() | dims)
    return h.make_tensor_value_info(draw(names), draw(elem_types), shape)


@st.composite
def nodes(draw):
    op = draw(st.sampled_from(["Relu", "Add", "MatMul", "Reshape", "Gather", "Concat", "Transpose", "If", "Foo"]))
    attrs = draw(st.dictionaries(st.sampled_from(["axis", "perm", "to", "keepdims", "bogus"]), attr_values, max_size=2))
    return h.make_node(op, draw(st.lists(names, max_size=3)), draw(st.lists(names, max_size=2)), **attrs)


@SETTINGS
@given(
    node_list=st.lists(nodes(), max_size=4),
    inputs=st.lists(value_infos(), max_size=3),
    outputs=st.lists(value_infos(), max_size=2),
    opset=st.integers(-1, 30),
    ir_version=st.integers(-1, 15),
)
def test_generated_graphs(node_list, inputs, outputs, opset, ir_version):
    """Models assembled from random nodes, names, types, shapes and attributes."""
    graph = h.make_graph(node_list, "g", inputs, outputs)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    model.ir_version = ir_version
    loads_or_refuses(model)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_models_load(name):
    """The unmutated seeds are valid: the fuzzers start from models aic accepts."""
    assert isinstance(load_model(onnx.load_from_string(SEED_BYTES[name])), Graph)
