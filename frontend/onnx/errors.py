"""Frontend errors, and the whole-model check for unsupported ops.

Every problem the frontend finds is a `FrontendError` whose message names the
model file, or the ONNX node, its op type and opset and its input types, so a
user can find it in their model without a protobuf or numpy traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import onnx

DEFAULT_DOMAINS = ("", "ai.onnx")


class FrontendError(ValueError):
    """The model cannot be read or converted."""


@dataclass
class _Unsupported:
    label: str
    domain: str
    opset: int
    count: int
    first: str


def walk_nodes(graph: onnx.GraphProto) -> Iterator[tuple[onnx.NodeProto, str]]:
    """Every node with its display name, nodes of subgraphs (If/Loop/Scan bodies) included."""
    for index, node in enumerate(graph.node):
        yield node, node.name or f"{node.op_type}_{index}"
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from walk_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from walk_nodes(sub)


def check_supported(model: onnx.ModelProto, supported: Callable[[str, str, int], bool]) -> None:
    """Raise one FrontendError listing every unsupported op of the model (with
    counts, domain, opset and first node), subgraphs included. `supported(domain,
    op_type, opset)` says whether the frontend converts an op."""
    opsets = {entry.domain or "": entry.version for entry in model.opset_import}
    default = opset_of(model)
    found: dict[tuple[str, str], _Unsupported] = {}
    for node, name in walk_nodes(model.graph):
        domain = "" if node.domain in DEFAULT_DOMAINS else node.domain
        opset = default if not domain else opsets.get(domain, 0)
        if supported(domain, node.op_type, opset):
            continue
        key = (domain, node.op_type)
        if key in found:
            found[key].count += 1
        else:
            label = f"{domain}:{node.op_type}" if domain else node.op_type
            found[key] = _Unsupported(label, domain, opset, 1, name)
    if found:
        items = ", ".join(
            f"{u.label} x{u.count} (domain '{u.domain}'"
            + (f" opset {u.opset}" if u.domain else "")
            + f", first node '{u.first}'{_hint(u, default)})"
            for u in found.values()
        )
        total = len(found)
        raise FrontendError(f"{total} unsupported op{'s' if total > 1 else ''} in model (opset {default}): {items}")


def _hint(op: _Unsupported, opset: int) -> str:
    """Why a default-domain op is not converted: not in ONNX, or not at this opset."""
    name = op.label
    if op.domain:
        return ""
    if not onnx.defs.has(name):
        return "; not an ONNX op"
    if not onnx.defs.has(name, opset):
        since = next(v for v in range(opset + 1, onnx.defs.onnx_opset_version() + 1) if onnx.defs.has(name, v))
        return f"; ONNX defines it from opset {since}"
    return ""


def opset_of(model: onnx.ModelProto) -> int:
    """The model's opset for the default ONNX domain."""
    for entry in model.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            return entry.version
    raise FrontendError("model imports no opset of the default ONNX domain")
