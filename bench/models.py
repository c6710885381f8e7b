"""The benchmark models, with random weights, and their ONNX export.

Each model is a `ModelSpec`: a builder for the eval-mode torch module, its example inputs,
input/output names and which axes may be dynamic. `export` writes ONNX with either torch
exporter: the dynamo exporter (`dynamo=True`, torch.export + onnxscript) or the legacy
TorchScript exporter (`dynamo=False`). Nothing is downloaded: transformers models come from
their default configs (BERT-base, GPT-2 small) with random weights.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import onnx
import onnx.numpy_helper
import onnx.shape_inference
import onnx.version_converter
import torch
from torch import nn

from bench import zoo
from bench.cnn import mobilenet_v2_module, resnet50_module

SEED = 0
BERT_SEQ = 128
GPT2_SEQ = 64
MLP_BATCH = 32
DYNAMO_MIN_OPSET = 18  # the dynamo exporter's lowest opset; it converts down to lower ones
# transformers' plain attention (MatMul, scale, mask Add, Softmax, MatMul), the pattern most
# deployed BERT/GPT-2 ONNX files carry; its default "sdpa" exports the same math less directly
ATTENTION = "eager"


class BertWrapper(nn.Module):
    """BertModel returning (last_hidden_state, pooler_output) as a plain tuple."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return out.last_hidden_state, out.pooler_output


class GPT2Wrapper(nn.Module):
    """GPT2LMHeadModel without a KV cache, returning the logits.

    The attention mask is an input (as in common GPT-2 exports); without it transformers
    looks for packed sequences with `torch.diff`, which the TorchScript exporter lacks.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


_TORCHVISION_OPS: list[torch.library.Library] = []


def import_torchvision():
    """torchvision, importable even where its C++ ops do not load.

    The registry's torchvision wheel is linked against CUDA torch; with CPU torch its ops library fails to load and
    its import then stops at registering fake kernels for `nms` and `qnms`. Declaring those two schemas first lets
    it import; the classifiers use neither. transformers imports torchvision too, so this runs before either."""
    try:
        import torchvision
    except RuntimeError:
        for module in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[module]
        library = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _TORCHVISION_OPS.append(library)  # kept alive: the schemas go with the object
        import torchvision
    return torchvision


def mlp_module() -> nn.Module:
    """A plain MLP: 1024 -> 4096 -> 4096 -> 1000 with GELU (erf) and ReLU."""
    return nn.Sequential(
        nn.Linear(1024, 4096), nn.GELU(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000)
    ).eval()


def bert_module() -> nn.Module:
    import_torchvision()
    from transformers import BertConfig, BertModel

    return BertWrapper(BertModel(BertConfig(attn_implementation=ATTENTION))).eval()


def gpt2_module() -> nn.Module:
    import_torchvision()
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2Wrapper(GPT2LMHeadModel(GPT2Config(use_cache=False, attn_implementation=ATTENTION))).eval()


def bert_inputs(batch: int = 1, seq: int = BERT_SEQ) -> dict[str, np.ndarray]:
    """Token ids, a mask with the last eighth padded out, and two segments."""
    rng = np.random.default_rng(SEED)
    mask = np.ones((batch, seq), np.int64)
    mask[:, seq - seq // 8 :] = 0
    segments = np.zeros((batch, seq), np.int64)
    segments[:, seq // 2 :] = 1
    return {
        "input_ids": rng.integers(0, 30522, (batch, seq), dtype=np.int64),
        "attention_mask": mask,
        "token_type_ids": segments,
    }


def gpt2_inputs(batch: int = 1, seq: int = GPT2_SEQ) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    return {
        "input_ids": rng.integers(0, 50257, (batch, seq), dtype=np.int64),
        "attention_mask": np.ones((batch, seq), np.int64),
    }


def image_inputs(batch: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    return {"input": rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)}


def mlp_inputs(batch: int = MLP_BATCH) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    return {"input": rng.standard_normal((batch, 1024), dtype=np.float32)}


@dataclass(frozen=True)
class ModelSpec:
    """A benchmark model: its builder, example inputs, names and dynamic axes."""

    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[], dict[str, np.ndarray]]
    output_names: tuple[str, ...]
    dynamic_axes: dict[int, tuple[str, int]]  # axis -> (symbol, largest size), the same for every input


BATCH = ("batch", 1024)
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("resnet50", lambda: resnet50_module(_generator()), image_inputs, ("logits",), {0: BATCH}),
        ModelSpec("mobilenet_v2", lambda: mobilenet_v2_module(_generator()), image_inputs, ("logits",), {0: BATCH}),
        ModelSpec(
            "bert_base", bert_module, bert_inputs, ("last_hidden_state", "pooler_output"), {0: BATCH, 1: ("seq", 512)}
        ),
        ModelSpec("gpt2", gpt2_module, gpt2_inputs, ("logits",), {0: BATCH, 1: ("seq", 1024)}),
        ModelSpec("mlp", mlp_module, mlp_inputs, ("output",), {0: BATCH}),
        ModelSpec("efficientnet_b0", zoo.efficientnet_b0_module, zoo.image_224, ("logits",), {0: BATCH}),
        ModelSpec("unet_small", zoo.unet_module, zoo.image_128, ("mask",), {0: BATCH}),
        ModelSpec("yolo_head", zoo.yolo_module, zoo.image_320, ("boxes",), {0: BATCH}),
        ModelSpec("convnext_blocks", zoo.convnext_module, zoo.image_224, ("features",), {0: BATCH}),
        ModelSpec("lstm_tagger", zoo.tagger_module, zoo.token_ids, ("tags",), {0: BATCH}),
        ModelSpec("whisper_like", zoo.whisper_module, zoo.mel_frames, ("features",), {0: BATCH}),
    )
}


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(SEED)


def build(name: str) -> nn.Module:
    """The eval-mode torch module of model `name`, its weights fixed by the seed."""
    torch.manual_seed(SEED)
    return MODELS[name].build()


def model_filename(name: str, dynamo: bool, opset: int, dynamic: bool = False) -> str:
    exporter = "dynamo" if dynamo else "torchscript"
    return f"{name}_{exporter}_op{opset}{'_dyn' if dynamic else ''}.onnx"


def export(
    name: str, path: str | os.PathLike, opset: int, dynamo: bool, dynamic: bool = False, spec: ModelSpec | None = None
) -> Path:
    """Export model `name` (or `spec`, a model outside MODELS) to ONNX at `path` (one self-contained file).

    Shapes are static unless `dynamic`, which makes the spec's axes (batch, and sequence for
    the transformers) symbolic.
    """
    spec = spec or MODELS[name]
    torch.manual_seed(SEED)
    module = spec.build()
    feeds = spec.inputs()
    args = tuple(torch.from_numpy(a) for a in feeds.values())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict = {}
    if dynamic and dynamo:
        dims = {axis: torch.export.Dim(sym, max=top) for axis, (sym, top) in spec.dynamic_axes.items()}
        kwargs["dynamic_shapes"] = tuple(dims for _ in feeds)
    elif dynamic:
        kwargs["dynamic_axes"] = {n: {axis: sym for axis, (sym, _) in spec.dynamic_axes.items()} for n in feeds}
    # its failed down-conversions are finished by _finish_down_conversion: no need for the traceback
    logging.getLogger("onnxscript.version_converter").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(feeds),
            output_names=list(spec.output_names),
            opset_version=opset,
            dynamo=dynamo,
            external_data=False,
            verbose=False,
            **kwargs,
        )
    if dynamo and opset < DYNAMO_MIN_OPSET:
        _finish_down_conversion(path, opset)
    return path


def _finish_down_conversion(path: Path, opset: int) -> None:
    """Finish the dynamo exporter's conversion from opset 18 (its lowest) down to `opset`.

    Its converter may give up and keep opset 18: onnx's converter is then run here; it
    turns a Reduce* `axes` input into an attribute but keeps `noop_with_empty_axes`, which
    opset 17 lacks (dropped: it is 0, the opset-17 behaviour). Its converter may also leave
    Split's opset-18 `num_outputs`: replaced by the equivalent `split` sizes input. The
    result must pass the full checker.
    """
    model = onnx.load(str(path))
    if default_opset(model) > opset:
        model = onnx.version_converter.convert_version(model, opset)
    shapes = _static_shapes(model)
    for node in model.graph.node:
        if node.op_type.startswith("Reduce") and node.op_type != "ReduceSum":
            _drop_attribute(node, "noop_with_empty_axes", expected=0)
        elif node.op_type == "Split" and any(a.name == "num_outputs" for a in node.attribute):
            _split_sizes_as_input(model, node, shapes)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    return {
        i.name: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in i.type.tensor_type.shape.dim]
        for i in infos
    }


def _drop_attribute(node: onnx.NodeProto, name: str, expected: int | None = None) -> None:
    """Remove attribute `name`; with `expected`, only that value may be dropped."""
    for a in node.attribute:
        if a.name == name and expected is not None and a.i != expected:
            raise ValueError(f"{node.op_type} {node.name}: {name}={a.i} has no opset-17 equivalent")
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept)


def _split_sizes_as_input(model: onnx.ModelProto, node: onnx.NodeProto, shapes: dict) -> None:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    parts, axis = attrs["num_outputs"], attrs.get("axis", 0)
    size = shapes[node.input[0]][axis]
    if not isinstance(size, int) or size % parts:
        raise ValueError(f"Split {node.name}: cannot express num_outputs={parts} over dim {size} for opset 17")
    name = f"{node.name}_split_sizes"
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.full(parts, size // parts, np.int64), name))
    node.input.append(name)
    _drop_attribute(node, "num_outputs")


def default_opset(model: onnx.ModelProto) -> int:
    """The version of the default ONNX domain a model imports."""
    return next(e.version for e in model.opset_import if e.domain in ("", "ai.onnx"))


def torch_outputs(name: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run the torch module itself: the reference an export is checked against."""
    module = build(name)
    with torch.no_grad():
        out = module(*(torch.from_numpy(a) for a in feeds.values()))
    outs = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in outs]
