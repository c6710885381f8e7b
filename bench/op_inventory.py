"""The op inventory of the exported benchmark models, written to docs/model_ops.md.

    python -m bench.op_inventory [--out docs/model_ops.md]

Reads every bench/models/*.onnx (run `python -m bench.export_models` first) with onnx alone
and lists, per model/exporter/opset: the op types with counts, the distinct values of every
attribute, and the input signatures (each input constant `c` or computed `x`, with its dtype).
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnx.shape_inference
import onnxruntime
import torch
from onnx import helper, numpy_helper

from bench.export_models import MODEL_DIR
from bench.models import MODELS, default_opset, import_torchvision

import_torchvision()
import transformers  # noqa: E402  (after torchvision can import)

DOC = Path(__file__).resolve().parent.parent / "docs" / "model_ops.md"
SHORT = {"float32": "f32", "float64": "f64", "float16": "f16", "int64": "i64", "int32": "i32", "bool": "bool"}
SEP = " \\| "  # a "|" inside a markdown table cell


def dtype_name(elem_type: int) -> str:
    if not elem_type:
        return "?"
    name = helper.tensor_dtype_to_np_dtype(elem_type).name
    return SHORT.get(name, name)


def attribute_text(attr: onnx.AttributeProto) -> str:
    """A short, stable rendering of one attribute value (tensors by dtype, shape and small contents)."""
    if attr.type == onnx.AttributeProto.TENSOR:
        array = numpy_helper.to_array(attr.t)
        text = f"{dtype_name(attr.t.data_type)}{list(array.shape)}"
        return f"{text}=[{','.join(map(number_text, array.ravel().tolist()))}]" if array.size <= 4 else text
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return "[" + ",".join(v.decode() if isinstance(v, bytes) else number_text(v) for v in value) + "]"
    if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        return "<subgraph>"
    return number_text(value)


def number_text(v: float | int | bool) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def iter_nodes(graph: onnx.GraphProto):
    """Every node, including those inside If/Loop/Scan bodies."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                yield from iter_nodes(sub)


def summarise(path: Path) -> dict:
    """Op counts, attribute values and input signatures of one ONNX file."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    dtypes = {
        i.name: dtype_name(i.type.tensor_type.elem_type) for i in [*graph.value_info, *graph.input, *graph.output]
    }
    constants = {t.name for t in graph.initializer}
    for t in graph.initializer:
        dtypes[t.name] = dtype_name(t.data_type)
    for node in iter_nodes(graph):
        if node.op_type == "Constant":
            constants.update(node.output)
    counts: Counter[str] = Counter()
    attrs: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    signatures: dict[str, Counter[str]] = defaultdict(Counter)
    for node in iter_nodes(graph):
        counts[node.op_type] += 1
        for attr in node.attribute:
            attrs[node.op_type][attr.name].add(attribute_text(attr))
        sig = ", ".join("-" if not i else f"{'c' if i in constants else 'x'}:{dtypes.get(i, '?')}" for i in node.input)
        signatures[node.op_type][sig] += 1
    weights = sum(int(np.prod(t.dims)) for t in graph.initializer)
    return {
        "opset": default_opset(model),
        "domains": sorted({o.domain or "ai.onnx" for o in model.opset_import}),
        "functions": len(model.functions),
        "nodes": sum(counts.values()),
        "weights": weights,
        "inputs": [io_text(i) for i in graph.input if i.name not in constants],
        "outputs": [io_text(o) for o in graph.output],
        "counts": counts,
        "attrs": attrs,
        "signatures": signatures,
    }


def io_text(info: onnx.ValueInfoProto) -> str:
    t = info.type.tensor_type
    dims = [str(d.dim_value) if d.HasField("dim_value") else d.dim_param for d in t.shape.dim]
    return f"`{info.name}` {dtype_name(t.elem_type)}[{','.join(dims)}]"


def export_section(name: str, s: dict) -> list[str]:
    lines = [
        f"### {name}",
        "",
        f"opset {s['opset']}, domains {', '.join(s['domains'])}, {s['functions']} local functions, "
        f"{s['nodes']} nodes, {s['weights'] / 1e6:.1f} M weights. "
        f"Inputs {', '.join(s['inputs'])}; outputs {', '.join(s['outputs'])}.",
        "",
        "| op | count | attributes (distinct values) | inputs (c const / x computed: dtype) × count |",
        "| --- | ---: | --- | --- |",
    ]
    for op, count in sorted(s["counts"].items()):
        attrs = "; ".join(f"{k}: {SEP.join(sorted(v))}" for k, v in sorted(s["attrs"][op].items()))
        sigs = "; ".join(f"({sig}) ×{n}" for sig, n in s["signatures"][op].most_common())
        lines.append(f"| {op} | {count} | {attrs} | {sigs} |")
    return [*lines, ""]


def union_section(summaries: dict[str, dict]) -> list[str]:
    users: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, s in summaries.items():
        model, variant = short_name(name).split(" ")
        for op in s["counts"]:
            users[op][model].append(variant)
    lines = [
        f"## Union of op types ({len(users)})",
        "",
        "| op | exports using it | distinct attribute values over all exports |",
        "| --- | --- | --- |",
    ]
    for op in sorted(users):
        merged: dict[str, set[str]] = defaultdict(set)
        for s in summaries.values():
            for k, v in s["attrs"].get(op, {}).items():
                merged[k] |= v
        attrs = "; ".join(f"{k}: {SEP.join(sorted(v))}" for k, v in sorted(merged.items()))
        used = "; ".join(f"{m} {' '.join(v)}" for m, v in users[op].items())
        lines.append(f"| {op} | {used} | {attrs} |")
    return [*lines, ""]


def matrix_section(summaries: dict[str, dict]) -> list[str]:
    ops = sorted({op for s in summaries.values() for op in s["counts"]})
    names = list(summaries)
    lines = [
        "## Op counts per export",
        "",
        "| op | " + " | ".join(short_name(n) for n in names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for op in ops:
        lines.append(f"| {op} | " + " | ".join(str(summaries[n]["counts"].get(op, "")) for n in names) + " |")
    return [*lines, ""]


def short_name(stem: str) -> str:
    """`gpt2_dynamo_op20_dyn` -> `gpt2 dy20d`: exporter ts/dy, opset, d for dynamic axes."""
    return stem.replace("_torchscript_op", " ts").replace("_dynamo_op", " dy").replace("_dyn", "d")


def model_files() -> list[Path]:
    """The exports, ordered by model, exporter, opset."""
    files = list(MODEL_DIR.glob("*.onnx"))
    order = list(MODELS)
    return sorted(files, key=lambda p: (next(i for i, m in enumerate(order) if p.stem.startswith(m + "_")), p.stem))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DOC)
    args = parser.parse_args()
    summaries = {p.stem: summarise(p) for p in model_files()}
    if not summaries:
        raise SystemExit(f"no models in {MODEL_DIR}: run `python -m bench.export_models` first")
    header = [
        "# Ops in the benchmark models",
        "",
        "Generated by `python -m bench.op_inventory` from the exports of `python -m bench.export_models`",
        f"(torch {torch.__version__}, transformers {transformers.__version__}, onnx {onnx.__version__}, "
        f"onnxruntime {onnxruntime.__version__}; random weights). Models: ResNet-50 and",
        "MobileNetV2 (torchvision architectures, 1x3x224x224), BERT-base (batch 1, seq 128, eager attention),",
        "GPT-2 small LM head (batch 1, seq 64, no KV cache), MLP (32x1024, 1024-4096-4096-1000, GELU erf + ReLU).",
        "Exporters: `torchscript` is `torch.onnx.export(dynamo=False)`, `dynamo` is the torch.export +",
        "onnxscript exporter (lowest native opset 18; its opset-17 files are converted down, see",
        "`bench/models.py`). Short names: `ts` TorchScript, `dy` dynamo, then the opset; a trailing `d` marks",
        "an export with symbolic batch (and sequence) axes (`--dynamic`), the others have static shapes.",
        "Subgraph nodes are counted too; `Constant` outputs count as constants.",
        "",
    ]
    lines = header + union_section(summaries) + matrix_section(summaries) + ["## Per export", ""]
    for name, s in summaries.items():
        lines += export_section(name, s)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    union = sorted({op for s in summaries.values() for op in s["counts"]})
    print(f"wrote {args.out}: {len(summaries)} exports, {len(union)} op types: {', '.join(union)}")


if __name__ == "__main__":
    main()
