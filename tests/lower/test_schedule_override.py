"""Schedules given from outside (`aic.compile(..., schedules=...)`) replace a kernel's tiling and loop
schedule; every alternative still matches onnxruntime, and an invalid one is refused by name."""

import numpy as np
import pytest
from aic.compiler.pipeline import lower_model
from aic.ir.loop import For
from aic.ir.schedule import CachePack, MicroKernel, Parallel, ScheduleError, Split, TileOrder, Unroll, Vectorize
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import aic
from tests.onnx_util import assert_close, run_ort

rng = np.random.default_rng(7)


def f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def model(op: str, inputs: dict, weights: dict, out_shape: list[int], **attrs):
    nodes = [h.make_node(op, [*inputs, *weights], ["y"], **attrs)]
    graph = h.make_graph(
        nodes,
        op.lower(),
        [h.make_tensor_value_info(n, T.FLOAT, list(a.shape)) for n, a in inputs.items()],
        [h.make_tensor_value_info("y", T.FLOAT, out_shape)],
        [nh.from_array(a, n) for n, a in weights.items()],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


MATMUL = (model("MatMul", {"a": f(37, 50)}, {"b": f(50, 70)}, [37, 70]), {"a": f(37, 50)})
BATCHED_FEEDS = {"a": f(3, 20, 30), "b": f(3, 30, 40)}
BATCHED = (model("MatMul", BATCHED_FEEDS, {}, [3, 20, 40]), BATCHED_FEEDS)
CONV_TILED = (  # stride 2: tiles of output positions x output channels
    model("Conv", {"x": f(1, 8, 15, 15)}, {"w": f(32, 8, 3, 3)}, [1, 32, 7, 7], strides=[2, 2]),
    {"x": f(1, 8, 15, 15)},
)
CONV_ROWS = (  # stride 1: tiles of output channels x positions along a row
    model("Conv", {"x": f(1, 8, 12, 20)}, {"w": f(24, 8, 3, 3)}, [1, 24, 12, 20], pads=[1, 1, 1, 1]),
    {"x": f(1, 8, 12, 20)},
)
DEPTHWISE = (
    model("Conv", {"x": f(1, 16, 10, 10)}, {"w": f(16, 1, 3, 3)}, [1, 16, 10, 10], pads=[1, 1, 1, 1], group=16),
    {"x": f(1, 16, 10, 10)},
)


def the_kernel(onnx_model) -> tuple[str, list]:
    """The name and default schedule of the model's one kernel."""
    (kernel,) = lower_model(onnx_model).kernels
    return kernel.name, list(kernel.attrs["schedule"])


def check(case, records_of) -> None:
    onnx_model, feeds = case
    name, default = the_kernel(onnx_model)
    expected = run_ort(onnx_model, feeds)[0]
    for records in records_of(default):
        module = aic.compile(onnx_model, schedules={name: records})
        assert_close(module.run(None, feeds)[0], expected, 1e-4, 1e-4, f"{name} with {records}")


def test_matmul_tilings():
    def alternatives(default):
        lanes = next(r.lanes for r in default if isinstance(r, Vectorize))
        narrow = [Vectorize(r.loop, max(4, r.lanes // 2)) if isinstance(r, Vectorize) else r for r in default]
        return [
            [MicroKernel(4, 16)],  # no CachePack: the weights stay unpacked
            [MicroKernel(8, 48), CachePack(1, 48)],
            [MicroKernel(1, 8), CachePack(1, 8)],
            [MicroKernel(4, 16), CachePack(1, 16), TileOrder("rows")],
            [TileOrder("rows")],  # the default tile and packing, rows outermost
            [r for r in narrow if not isinstance(r, Unroll)] if lanes > 4 else narrow,  # loop records, exactly
        ]

    check(MATMUL, alternatives)


def test_batched_matmul_tilings():
    rows_first = [MicroKernel(20, 8), TileOrder("rows")]
    check(BATCHED, lambda default: [[MicroKernel(5, 16)], [MicroKernel(2, 40)], rows_first])


def test_conv_tilings():
    check(CONV_TILED, lambda default: [[MicroKernel(4, 16)], [MicroKernel(7, 48), CachePack(1, 48), TileOrder("cols")]])
    check(CONV_ROWS, lambda default: [[MicroKernel(4, 16)], [MicroKernel(12, 20), CachePack(1, 12)]])


def test_depthwise_conv_loop_schedules():
    (kernel,) = lower_model(DEPTHWISE[0]).kernels
    outer = next(s for s in _loops(kernel.body)).var.name

    def alternatives(default):
        return [[Parallel(outer)], [Split(outer, 3), Parallel(f"{outer}.o")], [Split(outer, 5), Unroll(f"{outer}.i")]]

    check(DEPTHWISE, alternatives)


def _loops(body):
    from aic.ir.loop_tools import stmts_of

    return (s for s in stmts_of(body) if isinstance(s, For))


@pytest.mark.parametrize(
    "records,message",
    [
        ([MicroKernel(0, 16)], "micro_kernel(0, 16): rows and cols must be"),
        ([MicroKernel(6, 32), CachePack(1, 16)], "cache_pack(input 1, 16): the panel must match"),
        ([Vectorize("nope", 8)], "schedule record vectorize(nope, 8): no loop named nope"),
        ([TileOrder("k")], "tile_order(k): the outer tile loop is rows or cols"),
    ],
)
def test_invalid_schedules_are_refused_by_kernel_and_record(records, message):
    name, _ = the_kernel(MATMUL[0])
    with pytest.raises(ScheduleError, match=f"kernel {name} \\(MatMul\\)") as err:
        lower_model(MATMUL[0], schedules={name: records})
    assert message in str(err.value)


def test_directives_a_kernel_does_not_take_and_unknown_kernels_are_refused():
    name, _ = the_kernel(DEPTHWISE[0])
    with pytest.raises(ScheduleError, match="takes no directive micro_kernel"):
        lower_model(DEPTHWISE[0], schedules={name: [MicroKernel(4, 16)]})
    with pytest.raises(ScheduleError, match="unknown kernels \\['k99_nothing'\\]"):
        lower_model(DEPTHWISE[0], schedules={"k99_nothing": [Parallel("x")]})
