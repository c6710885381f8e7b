"""Held-out models: the benchmark's classes, built independently of bench/models.py, timed the same way.

    python -m bench.heldout [--models resnet18 distilbert ...] [--threads 1 2] [--runs 20] [--warmup 3]
                            [--pause 150] [--out bench/out/heldout]

torchvision CNNs (random weights, nothing downloaded), transformers encoders from random configs, a GRU tagger
and an MLP-Mixer, each built with a fixed seed and exported once with torch.onnx (dynamo, opset 20) to
bench/models/heldout/ (git-ignored), the export checked against torch. Each model is then compiled with aic and
timed against onnxruntime and OpenVINO at each thread count with bench/run.py's method (interleaved runs,
medians, paired ratio to the faster peer) and its outputs checked against onnxruntime.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aic.peak import measure_peak
from bench.check_interp import relative_error
from bench.cnn import randomise_batchnorm
from bench.models import SEED, ModelSpec, export, import_torchvision
from bench.peers import ort_runner
from bench.run import HEADER, bench_model, write_results
from bench.zoo import Tagger

MODEL_DIR = Path(__file__).resolve().parent / "models" / "heldout"
OUT_DIR = Path(__file__).resolve().parent / "out" / "heldout"
OPSET = 20
TOLERANCE = 1e-4  # the export against torch, fp32


def _rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


def image(size: int) -> dict[str, np.ndarray]:
    return {"input": _rng().standard_normal((1, 3, size, size), dtype=np.float32)}


def tokens(vocab: int, seq: int = 128, mask: bool = True) -> dict[str, np.ndarray]:
    """Token ids and (with `mask`) an attention mask with the last eighth padded out."""
    feeds = {"input_ids": _rng().integers(0, vocab, (1, seq), dtype=np.int64)}
    if mask:
        feeds["attention_mask"] = np.ones((1, seq), np.int64)
        feeds["attention_mask"][:, seq - seq // 8 :] = 0
    return feeds


def torchvision_model(name: str) -> nn.Module:
    """A torchvision classifier with random weights and non-trivial BatchNorm statistics."""
    model = import_torchvision().models.get_model(name, weights=None)
    randomise_batchnorm(model, torch.Generator().manual_seed(SEED))
    return model.eval()


class HiddenStates(nn.Module):
    """A transformers encoder returning only its last hidden state."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(*inputs).last_hidden_state


def distilbert() -> nn.Module:
    from transformers import DistilBertConfig, DistilBertModel

    return HiddenStates(DistilBertModel(DistilBertConfig(attn_implementation="eager"))).eval()


def t5_encoder() -> nn.Module:
    from transformers import T5Config, T5EncoderModel

    # t5-small's shape: 6 layers, d_model 512, 8 heads, d_ff 2048, relative position buckets
    return HiddenStates(T5EncoderModel(T5Config(attn_implementation="eager"))).eval()


def vit_small() -> nn.Module:
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                       attn_implementation="eager")
    return HiddenStates(ViTModel(config, add_pooling_layer=False)).eval()


def gru_tagger() -> nn.Module:
    """The benchmark's tagger with a GRU of hidden size 192 (vocabulary 8000, 17 tags)."""
    return Tagger(8000, 128, 192, 17, rnn=nn.GRU).eval()


class MixerBlock(nn.Module):
    """Token-mixing MLP across patches, then channel-mixing MLP, each pre-norm with a residual."""

    def __init__(self, patches: int, dim: int, token_hidden: int, channel_hidden: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.tokens = nn.Sequential(nn.Linear(patches, token_hidden), nn.GELU(), nn.Linear(token_hidden, patches))
        self.channels = nn.Sequential(nn.Linear(dim, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channels(self.norm2(x))


class Mixer(nn.Module):
    """MLP-Mixer S/16 at 224x224: 196 patches of 512 channels, 8 blocks, mean pool, 1000 classes."""

    def __init__(self, dim: int = 512, depth: int = 8, patch: int = 16, size: int = 224) -> None:
        super().__init__()
        patches = (size // patch) ** 2
        self.stem = nn.Conv2d(3, dim, patch, patch)
        self.blocks = nn.Sequential(*(MixerBlock(patches, dim, 256, 2048) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x).flatten(2).transpose(1, 2))
        return self.head(self.norm(x).mean(1))


def _vision(name: str, size: int = 224) -> ModelSpec:
    return ModelSpec(name, lambda: torchvision_model(name), lambda: image(size), ("logits",), {})


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        *(_vision(n) for n in ("resnet18", "densenet121", "mobilenet_v3_large", "shufflenet_v2_x1_0",
                               "regnet_y_400mf", "mnasnet1_0", "squeezenet1_1")),
        _vision("efficientnet_b1", 240),
        _vision("convnext_tiny"),
        ModelSpec("distilbert", distilbert, lambda: tokens(30522), ("last_hidden_state",), {}),
        ModelSpec("t5_encoder", t5_encoder, lambda: tokens(32128), ("last_hidden_state",), {}),
        ModelSpec("vit_small", vit_small, lambda: {"pixel_values": image(224)["input"]}, ("last_hidden_state",), {}),
        ModelSpec("gru_tagger", gru_tagger, lambda: tokens(8000, 48, mask=False), ("tags",), {}),
        ModelSpec("mlp_mixer", lambda: Mixer().eval(), lambda: image(224), ("logits",), {}),
    )
}


def exported(spec: ModelSpec) -> Path:
    """The model's ONNX file, exported (and checked against torch) if it is not on disk yet."""
    path = MODEL_DIR / f"{spec.name}_dynamo_op{OPSET}.onnx"
    if path.exists():
        return path
    torch.set_num_threads(1)
    import_torchvision()
    export(spec.name, path, OPSET, dynamo=True, spec=spec)
    feeds = spec.inputs()
    torch.manual_seed(SEED)
    with torch.no_grad():
        want = spec.build()(*(torch.from_numpy(a) for a in feeds.values()))
    got = ort_runner(path, 1)(feeds)[0]
    err = relative_error(got, want.numpy())
    if err > TOLERANCE:
        path.unlink()
        raise ValueError(f"{spec.name}: onnxruntime differs from torch by {err:.1e} relative")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--pause", type=float, default=150.0, help="milliseconds idle before each timed run")
    parser.add_argument("--export-only", action="store_true", help="export the models, time nothing")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--opt-level", type=int, default=2, help="aic optimisation level (0-3)")
    args = parser.parse_args()
    if args.export_only:
        for name in args.models:
            start = time.perf_counter()
            try:
                print(f"{exported(MODELS[name]).name}: {time.perf_counter() - start:.1f} s", flush=True)
            except Exception as err:  # report each failing export and go on
                print(f"{name}: export failed: {type(err).__name__}: {str(err).splitlines()[0][:300]}", flush=True)
        return
    settings = {"models": args.models, "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
                "exporter": "dynamo", "opset": OPSET, "opt_level": 2}
    peak = measure_peak().gflops_per_core
    print(f"FP32 FMA peak of one core: {peak:.1f} GFLOP/s", *HEADER, sep="\n", flush=True)
    rows = []
    for name in args.models:
        rows += bench_model(name, exported(MODELS[name]), args, peak, MODELS[name].inputs())
    print()
    print(write_results(rows, settings, peak, args.out))


if __name__ == "__main__":
    main()
