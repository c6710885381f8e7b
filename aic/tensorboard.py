"""TensorBoard export: a model's graph, as read and after the graph passes, for the Graphs tab.

    aic inspect model.onnx --tensorboard runs/     # then: tensorboard --logdir runs/

Two runs are written, each one event file through the `tensorboard` package:
`DIR/input` (the graph as read) and `DIR/optimized_O<n>` (after the passes), where each
fused group is a name scope (`k003_MatMul_Add_Relu/fc1`) so that TensorBoard draws a kernel
as one box. Nodes carry their op, their output shapes (`_output_shapes`, drawn on the edges)
and dtypes; graph inputs are Placeholders and weights Consts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_DTYPES = {"float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5, "int8": 6, "int64": 9, "bool": 10,
           "uint16": 17, "float16": 19, "uint32": 22, "uint64": 23, "bfloat16": 14}  # fmt: skip


def graph_def(graph: Any, scopes: Mapping[int, str] | None = None) -> Any:
    """`graph` (aic graph IR) as a TensorBoard GraphDef; `scopes` maps id(node) -> name scope."""
    from tensorboard.compat.proto.graph_pb2 import GraphDef

    scopes = scopes or {}
    out = GraphDef()
    names: dict[int, str] = {}  # id(value) -> the TensorBoard node producing it
    taken: set[str] = set()

    def unique(name: str) -> str:
        name = re.sub(r"[^A-Za-z0-9_.\-/]", "_", name).strip("/") or "node"
        base, n = name, 0
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        return name

    for v in graph.inputs:
        names[id(v)] = _add(out, unique(f"inputs/{v.name}"), "Placeholder", [], [v])
    for v in graph.constants():
        names[id(v)] = _add(out, unique(f"weights/{v.name}"), "Const", [], [v])
    for i, node in enumerate(graph.nodes):
        own = unique(
            f"{scopes[id(node)]}/{node.name or node.op}" if id(node) in scopes else node.name or f"{node.op}_{i}"
        )
        inputs = [names[id(v)] for v in node.inputs if v is not None and id(v) in names]
        for k, v in enumerate(node.outputs):
            names[id(v)] = own if k == 0 else f"{own}:{k}"
        _add(out, own, node.op, inputs, node.outputs)
    for v in graph.outputs:
        if id(v) in names:
            _add(out, unique(f"outputs/{v.name}"), "Identity", [names[id(v)]], [v])
    return out


def _add(graph_def: Any, name: str, op: str, inputs: list[str], outputs: list[Any]) -> str:
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto

    node = graph_def.node.add(name=name, op=op, input=inputs)
    shapes = node.attr["_output_shapes"].list.shape
    for v in outputs:
        shape = shapes.add()
        for d in v.type.shape:
            shape.dim.append(
                TensorShapeProto.Dim(size=d) if isinstance(d, int) else TensorShapeProto.Dim(size=-1, name=d)
            )
    if outputs:
        node.attr["T"].type = _DTYPES.get(outputs[0].type.dtype.name, 0)
    return name


def write_graph(logdir: str | Path, graph_def: Any) -> Path:
    """Write one event file holding `graph_def` into `logdir`; return its path."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    suffix = f".aic{time.time_ns()}"
    writer = EventFileWriter(str(logdir), filename_suffix=suffix)
    writer.add_event(Event(wall_time=time.time(), step=0, graph_def=graph_def.SerializeToString()))
    writer.close()
    return next(Path(logdir).glob(f"events.out.tfevents.*{suffix}"))


def export(model: Any, logdir: str | Path, opt_level: int = 2, shapes: Mapping[str, Any] | None = None) -> list[Path]:
    """Write the graph as read and after the passes at `opt_level`, fused groups as scopes."""
    from aic.compiler.passes import optimize
    from aic.compiler.shapes import bind_shapes
    from aic.frontend.load import read_model
    from aic.ir import Graph

    from .kernel_groups import fused_groups

    graph = model if isinstance(model, Graph) else read_model(model)
    logdir = Path(logdir)
    files = [write_graph(logdir / "input", graph_def(graph))]
    optimized, _ = optimize(bind_shapes(graph, shapes), opt_level)
    scopes = {id(n): f"k{g.index:03d}_{g.label}" for g in fused_groups(optimized) for n in g.nodes}
    files.append(write_graph(logdir / f"optimized_O{opt_level}", graph_def(optimized, scopes)))
    return files


def add_tensorboard_argument(parser: Any) -> None:
    """`aic inspect --tensorboard DIR`."""
    parser.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="write the graph as read and after the passes (-O, default 2; fused groups as scopes) for TensorBoard",
    )


def run_tensorboard(args: Any) -> int:
    """The `aic inspect MODEL --tensorboard DIR` command."""
    import sys

    from aic.frontend.onnx import FrontendError

    try:
        dims = dict(item.split("=", 1) for item in args.dim)
        files = export(args.model, args.tensorboard, 2 if args.opt_level is None else args.opt_level,
                       {k: int(v) for k, v in dims.items()})  # fmt: skip
    except (FrontendError, ValueError, ImportError) as err:
        print(f"aic: error: {err}", file=sys.stderr)
        return 1
    for f in files:
        print(f"wrote {f}")
    print(f"view with: tensorboard --logdir {args.tensorboard}")
    return 0
