"""model.s: the data half of a model .so, as GNU assembly.

It holds the weight blob (`.incbin` of weights.bin under the hidden symbol
`aic_weights`, 64-byte aligned; one zero byte when the weights are in a side file),
`aic_weights_data` (whether they are external, their size and sha256) and
`aic_model_data`, the signature tables the runtime serves through aic.h (names, dtypes,
shapes, sizes, the metadata JSON, the target features checked at load). Assembly rather
than C keeps the link to one assembler and one linker run; the struct layouts written here are the ones aic_internal.h
declares, pinned by static asserts in aic_runtime.c (64-bit targets).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_ITEMSIZE = {
    "float16": 2, "bfloat16": 2, "float32": 4, "float64": 8, "bool": 1,
    "int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint8": 1, "uint16": 2, "uint32": 4, "uint64": 8,
}  # fmt: skip


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy-style name: "float32", "bool", "bfloat16"
    shape: tuple[int, ...]  # upper bounds for data-dependent dims
    dynamic: tuple[tuple[int, str, int], ...] = ()  # data-dependent dims: (dim, symbol, arena offset of its size)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * _ITEMSIZE[self.dtype]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.dynamic:
            out["dynamic_dims"] = [[dim, symbol] for dim, symbol, _ in self.dynamic]
        return out

    def size_slots(self) -> list[int]:
        """Per dim: -1 when static, else the arena byte offset of its size (aic_model_info.output_sizes)."""
        where = {dim: offset for dim, _, offset in self.dynamic}
        return [where.get(d, -1) for d in range(len(self.shape))]


def quoted(text: str) -> str:
    """A string literal for C or GNU as: non-printable bytes, quotes, backslashes and '?' as octal escapes."""
    out = []
    for byte in text.encode():
        ch = chr(byte)
        out.append(ch if 32 <= byte < 127 and ch not in '"\\?' else f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def model_assembly(
    metadata: dict[str, Any],
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    blob: Path | str,
    weights: dict[str, Any] | None = None,
) -> str:
    """The assembly source of the weights and of `aic_model_data` (with the kernels' error slot:
    metadata "error_slot", its arena byte offset or -1, and "error_sites", the text of each check;
    for sizes given at run time, "symbols" (name, min, max, opt), "dims_slot" and "input_dims")."""
    error_slot, error_sites = int(metadata.get("error_slot", -1)), list(metadata.get("error_sites", []))
    strings: list[str] = []

    def string(text: str) -> str:
        strings.append(text)
        return f".Lstr{len(strings) - 1}"

    data: list[str] = []

    def table(kind: str, specs: list[TensorSpec]) -> str:
        if not specs:
            return "0"
        shapes = []
        for i, spec in enumerate(specs):
            if spec.shape:
                data.append(f".L{kind}_shape{i}:")
                data.append(f"\t.quad {', '.join(str(d) for d in spec.shape)}")
            shapes.append(f".L{kind}_shape{i}" if spec.shape else "0")
        data.append(f".L{kind}s:")
        for spec, shape in zip(specs, shapes):  # aic_tensor_info: name, dtype, rank (+4 padding), shape, nbytes
            data.append(f"\t.quad {string(spec.name)}, {string(spec.dtype)}")
            data.append(f"\t.long {len(spec.shape)}, 0")
            data.append(f"\t.quad {shape}, {spec.nbytes}")
        return f".L{kind}s"

    input_table, output_table = table("input", inputs), table("output", outputs)
    sizes_table = "0"
    if any(spec.dynamic for spec in outputs):  # per output: 0, or its dims' size slots
        for i, spec in enumerate(outputs):
            if spec.dynamic:
                data.append(f".Loutput_sizes{i}:")
                data.append(f"\t.quad {', '.join(str(s) for s in spec.size_slots())}")
        data.append(".Loutput_sizes:")
        data.append(f"\t.quad {', '.join(f'.Loutput_sizes{i}' if s.dynamic else '0' for i, s in enumerate(outputs))}")
        sizes_table = ".Loutput_sizes"
    sites_table = "0"
    if error_sites:
        data.append(".Lerror_sites:")
        data.extend(f"\t.quad {string(text)}" for text in error_sites)
        sites_table = ".Lerror_sites"
    symbols = list(metadata.get("symbols", []))
    symbols_table, input_dims_table = "0", "0"
    if symbols:
        slot = {s["name"]: k for k, s in enumerate(symbols)}
        data.append(".Lsymbols:")
        for s in symbols:  # aic_symbol_info: name, min, max, opt
            data.append(f"\t.quad {string(s['name'])}, {int(s['min'])}, {int(s['max'])}, {int(s['opt'])}")
        for i, dims in enumerate(metadata["input_dims"]):
            data.append(f".Linput_dims{i}:")
            data.append(f"\t.quad {', '.join(str(d if isinstance(d, int) else -1 - slot[d]) for d in dims) or '0'}")
        data.append(".Linput_dims:")
        data.append(f"\t.quad {', '.join(f'.Linput_dims{i}' for i in range(len(inputs))) or '0'}")
        symbols_table, input_dims_table = ".Lsymbols", ".Linput_dims"
    target = metadata["target"]
    info = [  # aic_model_info: json, features, cpu, num_inputs, num_outputs, inputs, outputs, arena_bytes,
        # output_sizes, error_offset, error_sites, num_error_sites, num_symbols, dims_offset, symbols, input_dims
        "aic_model_data:",
        f"\t.quad {string(json.dumps(metadata, sort_keys=True))}, {string(','.join(target['features']))}, "
        f"{string(target['cpu'])}",
        f"\t.long {len(inputs)}, {len(outputs)}",
        f"\t.quad {input_table}, {output_table}, {int(metadata['arena_bytes'])}, {sizes_table}",
        f"\t.quad {int(error_slot)}, {sites_table}",
        f"\t.long {len(error_sites)}, {len(symbols)}",
        f"\t.quad {int(metadata.get('dims_slot', -1))}, {symbols_table}, {input_dims_table}",
    ]
    path = str(blob).replace("\\", "\\\\").replace('"', '\\"')
    weights = weights or {"external": False, "bytes": 0, "sha256": bytes(32)}
    return "\n".join([
        "/* Generated by aic: the model's weights and signature. */",
        '\t.section .rodata.aic_weights,"a"',
        "\t.balign 64",
        "\t.globl aic_weights",
        "\t.hidden aic_weights",
        "aic_weights:",
        *([] if weights["external"] else [f'\t.incbin "{path}"']),
        "\t.byte 0",  # the symbol is valid even for a model without weights
        "\t.balign 8",
        "\t.globl aic_weights_data",  # aic_weights_info: external, nbytes, sha256[32]
        "\t.hidden aic_weights_data",
        "aic_weights_data:",
        f"\t.quad {int(weights['external'])}, {int(weights['bytes'])}",
        f"\t.byte {', '.join(str(b) for b in weights['sha256'])}",
        "\t.section .rodata.aic_strings,\"a\"",
        *[f".Lstr{i}:\n\t.asciz {quoted(s)}" for i, s in enumerate(strings)],
        '\t.section .data.rel.ro.aic_model,"aw"',
        "\t.balign 8",
        *data,
        "\t.globl aic_model_data",
        "\t.hidden aic_model_data",
        *info,
        '\t.section .note.GNU-stack,"",%progbits',
        "",
    ])  # fmt: skip
