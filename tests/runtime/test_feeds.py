"""Input feeds converted or refused clearly: big-endian arrays are swapped to the
machine's byte order, list values that do not fit the input's type name the input
(runtime/module.py feed_array), for static and specializing modules alike."""

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import aic


def add_model(batch):
    graph = h.make_graph(
        [h.make_node("Add", ["x", "i"], ["y"]), h.make_node("Identity", ["n"], ["m"])],
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [batch, 3]), h.make_tensor_value_info("i", T.FLOAT, [3]),
         h.make_tensor_value_info("n", T.INT64, [2])],
        [h.make_tensor_value_info("y", T.FLOAT, [batch, 3]), h.make_tensor_value_info("m", T.INT64, [2])],
    )  # fmt: skip
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)


@pytest.fixture(scope="module", params=[2, "batch"], ids=["static", "specializing"])
def module(request):
    return aic.compile(add_model(request.param))


def test_big_endian_feed_is_swapped(module):
    x = np.arange(6, dtype=">f4").reshape(2, 3)
    i = np.array([1, 2, 3], dtype=">f4")
    y, m = module.run(None, {"x": x, "i": i, "n": np.array([5, 6], dtype=">i8")})
    np.testing.assert_array_equal(y, x.astype(np.float32) + i.astype(np.float32))
    np.testing.assert_array_equal(m, [5, 6])


def test_list_feeds_are_converted(module):
    y, m = module.run(None, {"x": [[0, 1, 2], [3, 4, 5]], "i": [1, 1, 1], "n": [7, 8]})
    np.testing.assert_array_equal(y, np.arange(1, 7, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(m, [7, 8])


def test_list_value_too_large_names_the_input(module):
    x, i = np.zeros((2, 3), np.float32), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="input 'n' cannot be read as int64: Python int too large"):
        module.run(None, {"x": x, "i": i, "n": [2**70, 1]})
    with pytest.raises(ValueError, match="input 'i' cannot be read as float32"):
        module.run(None, {"x": x, "i": ["a", "b", "c"], "n": [1, 2]})
