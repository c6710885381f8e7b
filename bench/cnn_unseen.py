"""CNNs the convolution kernels were not tuned on, against the peers, with the host's state measured per round.

    python -m bench.cnn_unseen [--models resnet18 resnet34 ...] [--threads 1 2] [--rounds 12] [--pause 150]

Builds each model with torch (random weights, BatchNorm statistics randomised, dynamo export, opset 20) into
bench/models/unseen/, compiles it with aic, checks aic against onnxruntime (max |aic - ORT| / max |ORT|), then
times aic, onnxruntime and OpenVINO in turns, each run after `--pause` ms idle (as bench/run.py): wall time, and
the process's CPU time (all its threads; a peer's spinning workers count too).

Each round also times a fixed probe, a 384^3 float32 matrix product by torch on one thread (FMA-bound, in L2):
on a shared virtual machine the core's throughput changes from minute to minute (another guest on the same
physical core), and the probe says how fast the core was in that round. Rounds are reported all together and
split by the probe's time: "quiet" rounds are the third with the fastest probe, "busy" the slowest third.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

import aic
from bench.busy_ab import summary, time_probed
from bench.check_interp import relative_error
from bench.cnn import ResNet, randomise_batchnorm
from bench.peers import ort_runner, ov_runner
from bench.zoo import ChannelNorm, ConvNeXtBlock

MODELS_DIR = Path(__file__).parent / "models" / "unseen"


class BasicBlock(nn.Module):
    """ResNet-18/34 block: two 3x3 convolutions (the first strided), residual add."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.down is None else self.down(x)
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + identity)


def basic_resnet(blocks: tuple[int, int, int, int]) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                               nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for stage, count in enumerate(blocks):
        cout = 64 << stage
        for b in range(count):
            layers.append(BasicBlock(cin, cout, 2 if b == 0 and stage > 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000)]
    return nn.Sequential(*layers)


def vgg_like() -> nn.Module:
    """VGG-11 with BatchNorm at 224x224, global pooling and one classifier layer (no 4096-wide FCs)."""
    layers: list[nn.Module] = []
    cin = 3
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, 1, 1), nn.BatchNorm2d(int(v)), nn.ReLU()]
            cin = int(v)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000)]
    return nn.Sequential(*layers)


def convnext_wide() -> nn.Module:
    """ConvNeXt-B widths (128, then 256 channels), 2 blocks each, from a 4x4 s4 stem at 224x224."""
    layers: list[nn.Module] = [nn.Conv2d(3, 128, 4, 4), ChannelNorm(128)]
    layers += [ConvNeXtBlock(128) for _ in range(2)]
    layers += [ChannelNorm(128), nn.Conv2d(128, 256, 2, 2)]
    layers += [ConvNeXtBlock(256) for _ in range(2)]
    return nn.Sequential(*layers)


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "resnet18": lambda: basic_resnet((2, 2, 2, 2)),
    "resnet34": lambda: basic_resnet((3, 4, 6, 3)),
    "resnet101": lambda: ResNet((3, 4, 23, 3)),
    "vgg11_bn": vgg_like,
    "convnext_wide": convnext_wide,
}


def export(name: str) -> Path:
    path = MODELS_DIR / f"{name}_dynamo_op20.onnx"
    if path.exists():
        return path
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = BUILDERS[name]().eval()
    randomise_batchnorm(model, generator)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = torch.randn(1, 3, 224, 224, generator=generator)
    with torch.no_grad():
        torch.onnx.export(model, (image,), str(path), input_names=["input"], output_names=["output"],
                          opset_version=20, dynamo=True, external_data=False, verbose=False)
    return path


def torch_probe() -> Callable[[], float]:
    """CPU ms of ten 384^3 products on one thread (torch.set_num_threads(1))."""
    a = torch.rand(384, 384)

    def probe() -> float:
        start = time.thread_time_ns()
        for _ in range(10):
            torch.mm(a, a)
        return (time.thread_time_ns() - start) / 1e6

    return probe


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--pause", type=float, default=150.0, help="milliseconds idle before each timed run")
    args = p.parse_args()
    torch.set_num_threads(1)  # the probe runs on one thread
    for name in args.models:
        path = export(name)
        so = path.with_suffix(".so")
        start = time.perf_counter()
        aic.compile(str(path), output=str(so))
        compile_s = time.perf_counter() - start
        for threads in args.threads:
            module = aic.load(so, num_threads=threads)
            feeds = {i.name: np.random.default_rng(0).standard_normal(i.shape).astype(i.dtype) for i in module.inputs}
            runners = {"aic": lambda f, m=module: m.run(None, f), "ort": ort_runner(path, threads)}
            ov = ov_runner(path, threads)
            if ov is not None:
                runners["ov"] = ov
            error = relative_error(runners["aic"](feeds)[0], runners["ort"](feeds)[0])
            times, probes = time_probed(runners, feeds, args.rounds, args.pause / 1e3, torch_probe())
            print(f"{name}, {threads} thread(s), compile {compile_s:.1f} s, max rel err vs ORT {error:.1e}\n"
                  + "\n".join(summary(times, probes, ["aic"])), flush=True)
            module.close()


if __name__ == "__main__":
    main()
