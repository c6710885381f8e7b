"""Converting a frozen TensorFlow graph into an aic Graph.

`load_tensorflow` reads the model (`sources.read_source`), keeps the nodes the
outputs need (control edges ignored), checks them and the library functions
their control flow calls for unsupported ops (one error listing them all),
then converts node by node in dependency order through the converter table.
Graph inputs and outputs take the signature's names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from aic.ir import Graph, GraphBuilder, OpError, TensorType, Value

from . import convert_array, convert_control, convert_math, convert_nn  # noqa: F401  (register converters)
from .context import CONVERTERS, TFContext
from .errors import TFFrontendError
from .sources import Source, read_source
from .tensors import aic_dtype, attr_value, tensor_array

PASS_THROUGH = frozenset({"Identity", "StopGradient", "PreventGradient", "Snapshot", "EnsureShape", "CheckNumerics"})
SKIPPED = frozenset({"NoOp", "Assert"})
HANDLED = PASS_THROUGH | {"Const", "Placeholder", "IdentityN", "PlaceholderWithDefault"}
OPSET = 21  # the ONNX opset whose semantics aic's ops follow

# Functions (If/While bodies) name a node output as node:arg:index; ops with several output args.
_OUTPUT_ARGS = {
    "TopKV2": ("values", "indices"),
    "Unique": ("y", "idx"),
    "FusedBatchNormV3": ("y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2", "reserve_space_3"),
    "FusedBatchNorm": ("y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2"),
}

Ref = Callable[[str], Value]


def load_tensorflow(model: Any, signature: str = "serving_default", outputs: list[str] | None = None) -> Graph:
    """A TensorFlow model (SavedModel folder, frozen .pb, .keras file, or a
    tf.Module / tf.function / Keras object) as an aic Graph."""
    return convert_source(read_source(model, signature, outputs))


def convert_source(source: Source) -> Graph:
    graph = source.graph
    nodes = {n.name: n for n in graph.node}
    functions = {f.signature.name: f for f in graph.library.function}
    outputs = source.outputs or _default_outputs(graph.node)
    for _, tensor in outputs:
        if _split(tensor)[0] not in nodes:
            raise TFFrontendError(f"output '{tensor}': the graph has no node '{_split(tensor)[0]}'")
    needed = _needed(nodes, [_split(t)[0] for _, t in outputs])
    inputs = source.inputs or [(n.name, f"{n.name}:0") for n in needed if n.op == "Placeholder"]
    _check_supported(needed, functions)
    taken = {name for name, _ in outputs}  # reserved: graph outputs are renamed to them at the end
    converter = _Converter(functions, taken)
    builder = GraphBuilder(source.name, OPSET, taken=taken)
    scope: dict[tuple[str, int], Value] = {}
    for name, tensor in inputs:
        node = nodes.get(_split(tensor)[0])
        if node is None or node.op not in ("Placeholder", "PlaceholderWithDefault"):
            raise TFFrontendError(f"input '{name}': '{tensor}' is not a Placeholder of the graph")
        scope[(node.name, 0)] = builder.input(name, _placeholder_type(node))

    def ref(tensor: str) -> Value:
        node, index = _split(tensor)
        return scope[(node, index)]

    converter.nodes(builder, needed, scope, ref)
    return builder.build(_name_outputs(builder, taken, [(name, ref(t)) for name, t in outputs], inputs))


def _split(tensor: str) -> tuple[str, int]:
    name, _, index = tensor.lstrip("^").partition(":")
    return name, int(index) if index else 0


def _default_outputs(nodes: Iterable[Any]) -> list[tuple[str, str]]:
    """Nodes whose outputs nothing reads (NoOps, Consts and control edges aside)."""
    nodes = list(nodes)
    read = {_split(i)[0] for n in nodes for i in n.input if not i.startswith("^")}
    sinks = [n for n in nodes if n.name not in read and n.op not in ("NoOp", "Const", "Assert")]
    if not sinks:
        raise TFFrontendError("the graph has no output node; name them with --outputs")
    return [(n.name, f"{n.name}:0") for n in sinks]


def _needed(nodes: dict[str, Any], roots: list[str]) -> list[Any]:
    """The nodes the roots depend on through data edges, in dependency order."""
    order: list[Any] = []
    state: dict[str, int] = {}
    for root in roots:
        stack = [(root, False)]
        while stack:
            name, done = stack.pop()
            if done:
                state[name] = 2
                order.append(nodes[name])
                continue
            if state.get(name):
                continue
            if name not in nodes:
                raise TFFrontendError(f"a node reads '{name}', which the graph does not have")
            state[name] = 1
            stack.append((name, True))
            for i in reversed(nodes[name].input):
                if not i.startswith("^"):
                    dep = _split(i)[0]
                    if state.get(dep) == 1:
                        raise TFFrontendError(f"the graph has a cycle through '{dep}' (TF1 control flow?)")
                    if not state.get(dep):
                        stack.append((dep, False))
    return order


def _check_supported(nodes: list[Any], functions: dict[str, Any]) -> None:
    """One error listing every unsupported op with its count and first node."""
    counts: Counter[str] = Counter()
    first: dict[str, str] = {}
    seen: set[str] = set()

    def visit(node_list: Iterable[Any]) -> None:
        for node in node_list:
            if node.op not in CONVERTERS and node.op not in HANDLED and node.op not in SKIPPED:
                counts[node.op] += 1
                first.setdefault(node.op, node.name)
            for attr in node.attr.values():
                names = [attr.func.name] if attr.WhichOneof("value") == "func" else []
                for fname in names:
                    if fname in functions and fname not in seen:
                        seen.add(fname)
                        visit(functions[fname].node_def)

    visit(nodes)
    if counts:
        items = ", ".join(f"{op} x{counts[op]} (first node '{first[op]}')" for op in counts)
        total = len(counts)
        raise TFFrontendError(f"{total} unsupported TensorFlow op{'s' if total > 1 else ''} in model: {items}")


def _placeholder_type(node: Any) -> TensorType:
    where = f"placeholder '{node.name}'"
    dtype = aic_dtype(node.attr["dtype"].type, where)
    shape = attr_value(node.attr["shape"], where) if "shape" in node.attr else None
    if shape is None:
        raise TFFrontendError(f"{where}: its rank is unknown; give the model an input signature with a shape")
    dims = [d if d >= 0 else ("batch" if i == 0 else f"{node.name}_d{i}") for i, d in enumerate(shape)]
    return TensorType(dtype, tuple(dims))


def _name_outputs(
    builder: GraphBuilder, taken: set[str], outputs: list[tuple[str, Value]], inputs: list[tuple[str, str]]
) -> list[Value]:
    """Graph outputs named after the signature: the value renamed, or an Identity where it is shared."""
    result: list[Value] = []
    input_names = {name for name, _ in inputs}
    produced = {id(v) for n in builder.nodes for v in n.outputs}
    claimed: set[int] = set()
    for name, value in outputs:
        if id(value) in produced and id(value) not in claimed and name not in input_names:
            taken.discard(value.name)
            value.name = name
            claimed.add(id(value))
            result.append(value)
        else:
            taken.discard(name)
            result.append(builder.node("Identity", [value], name=f"{name}/identity", output_names=[name])[0])
    return result


class _Converter:
    def __init__(self, functions: dict[str, Any], taken: set[str]) -> None:
        self.functions = functions
        self.taken = taken

    def nodes(self, builder: GraphBuilder, nodes: list[Any], scope: dict[tuple[str, int], Value], ref: Ref) -> None:
        for node in nodes:
            if node.op in ("Placeholder", "PlaceholderWithDefault") and (node.name, 0) in scope:
                continue
            try:
                inputs = [ref(i) for i in node.input if not i.startswith("^")]
            except KeyError as err:
                raise TFFrontendError(
                    f"node '{node.name}' ({node.op}) reads {err}, an output its producer's conversion does not give"
                ) from None
            for index, value in enumerate(self.node(builder, node, inputs)):
                scope[(node.name, index)] = value

    def node(self, builder: GraphBuilder, node: Any, inputs: list[Value]) -> list[Value]:
        where = f"node '{node.name}' ({node.op})"
        if node.op == "Const":
            return [builder.const(tensor_array(node.attr["value"].tensor, where), node.name)]
        if node.op in PASS_THROUGH or node.op in ("IdentityN", "PlaceholderWithDefault"):
            return inputs
        if node.op == "Placeholder":
            raise TFFrontendError(f"{where}: a Placeholder that is not a graph input")
        if node.op in SKIPPED:
            return []
        attrs = {k: attr_value(v, where) for k, v in node.attr.items()}
        ctx = TFContext(builder, node.name, node.op, inputs, attrs, self.body, self.taken)
        try:
            return CONVERTERS[node.op](ctx)
        except TFFrontendError:
            raise
        except OpError as err:
            raise ctx.error(str(err)) from None
        except Exception as err:  # a bug or an inference crash: still name the node
            raise ctx.error(f"{type(err).__name__}: {err}") from err

    def function(self, name: str) -> Any:
        if name not in self.functions:
            raise TFFrontendError(f"the graph calls function '{name}', which its library does not define")
        return self.functions[name]

    def body(self, builder: GraphBuilder, name: str, args: list[Value]) -> list[Value]:
        """Convert function `name` on `args` into `builder`; return its results."""
        function = self.function(name)
        signature = function.signature
        if len(args) != len(signature.input_arg):
            raise TFFrontendError(f"function '{name}' takes {len(signature.input_arg)} arguments, got {len(args)}")
        values = {arg.name: v for arg, v in zip(signature.input_arg, args)}
        kinds = {n.name: n.op for n in function.node_def}
        scope: dict[tuple[str, int], Value] = {}

        def ref(tensor: str) -> Value:
            parts = tensor.split(":")
            if len(parts) == 1:
                return values[parts[0]] if parts[0] in values else scope[(parts[0], 0)]
            node, arg, index = parts[0], parts[1], int(parts[2]) if len(parts) > 2 else 0
            return scope[(node, _OUTPUT_ARGS.get(kinds.get(node, ""), (arg,)).index(arg) + index)]

        nodes = {n.name: n for n in function.node_def}
        order = _function_order(nodes)
        self.nodes(builder, order, scope, ref)
        return [ref(function.ret[arg.name]) for arg in signature.output_arg]


def _function_order(nodes: dict[str, Any]) -> list[Any]:
    """A function's nodes in dependency order (inputs name node:arg:index or an argument)."""
    order: list[Any] = []
    done: set[str] = set()

    def deps(node: Any) -> list[str]:
        return [i.split(":")[0] for i in node.input if not i.startswith("^") and i.split(":")[0] in nodes]

    for root in nodes:
        stack = [(root, False)]
        while stack:
            name, expanded = stack.pop()
            if name in done:
                continue
            if expanded:
                done.add(name)
                order.append(nodes[name])
                continue
            stack.append((name, True))
            stack.extend((d, False) for d in deps(nodes[name]) if d not in done)
    return order
