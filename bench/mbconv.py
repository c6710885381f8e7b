"""Depthwise-separable models the blocked-layout kernels were not tuned on, exported to ONNX for A/B runs.

    python -m bench.mbconv OUT_DIR      # writes mobilenet_v3_like.onnx and efficientnet_b1_like.onnx

- MobileNetV3-Large-like: the paper's 15 bottlenecks (3x3/5x5 depthwise, ReLU or HardSwish, squeeze-excite
  with ReLU and HardSigmoid on 7 of them), 224x224;
- EfficientNet-B1-like: EfficientNet-B0's stages with depth x1.1 (repeats rounded up), 240x240.

Random weights, BatchNorm statistics randomised (bench/cnn.py), TorchScript export at opset 17; then
`python -m bench.ab OUT_DIR/NAME.onnx old=a.so new=b.so --peers` times two builds and the peers.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from torch import nn

from bench.cnn import make_divisible, randomise_batchnorm
from bench.zoo import InvertedResidual, MBConv, conv_bn

SEED = 0


class HardSqueezeExcite(nn.Module):
    """MobileNetV3's squeeze-excite: mean, 1x1 + ReLU, 1x1 + HardSigmoid, scale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = make_divisible(channels // 4)
        self.reduce, self.expand = nn.Conv2d(channels, squeezed, 1), nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.reduce(x.mean((2, 3), keepdim=True)))
        return x * nn.functional.hardsigmoid(self.expand(s))


class Bottleneck(InvertedResidual):
    def __init__(self, cin: int, mid: int, cout: int, k: int, stride: int, se: bool, hard: bool) -> None:
        act: type[nn.Module] = nn.Hardswish if hard else nn.ReLU
        layers: list[nn.Module] = [conv_bn(cin, mid, 1, act=act())] if mid != cin else []
        layers += [conv_bn(mid, mid, k, stride, mid, act()), *([HardSqueezeExcite(mid)] if se else []),
                   conv_bn(mid, cout, 1)]
        super().__init__(layers, cin, cout, stride)


def mobilenet_v3_like() -> nn.Module:
    # (kernel, expanded, out, squeeze-excite, HardSwish, stride) of MobileNetV3-Large
    spec = [(3, 16, 16, False, False, 1), (3, 64, 24, False, False, 2), (3, 72, 24, False, False, 1),
            (5, 72, 40, True, False, 2), (5, 120, 40, True, False, 1), (5, 120, 40, True, False, 1),
            (3, 240, 80, False, True, 2), (3, 200, 80, False, True, 1), (3, 184, 80, False, True, 1),
            (3, 184, 80, False, True, 1), (3, 480, 112, True, True, 1), (3, 672, 112, True, True, 1),
            (5, 672, 160, True, True, 2), (5, 960, 160, True, True, 1), (5, 960, 160, True, True, 1)]
    layers: list[nn.Module] = [conv_bn(3, 16, 3, 2, act=nn.Hardswish())]
    cin = 16
    for k, mid, cout, se, hard, stride in spec:
        layers.append(Bottleneck(cin, mid, cout, k, stride, se, hard))
        cin = cout
    layers += [conv_bn(cin, 960, 1, act=nn.Hardswish()), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(960, 1280), nn.Hardswish(), nn.Linear(1280, 1000)]
    return _finish(nn.Sequential(*layers))


def efficientnet_b1_like() -> nn.Module:
    stages = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3), (6, 112, 3, 1, 5),
              (6, 192, 4, 2, 5), (6, 320, 1, 1, 3)]  # as EfficientNet-B0 (bench/zoo.py), repeats x1.1
    layers: list[nn.Module] = [conv_bn(3, 32, 3, 2, act=nn.SiLU())]
    cin = 32
    for expand, cout, repeats, stride, k in stages:
        for i in range(math.ceil(repeats * 1.1)):
            layers.append(MBConv(cin, cout, expand, k, stride if i == 0 else 1))
            cin = cout
    layers += [conv_bn(cin, 1280, 1, act=nn.SiLU()), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000)]
    return _finish(nn.Sequential(*layers))


def _finish(model: nn.Module) -> nn.Module:
    randomise_batchnorm(model, torch.Generator().manual_seed(SEED))
    return model.eval()


MODELS = {"mobilenet_v3_like": (mobilenet_v3_like, 224), "efficientnet_b1_like": (efficientnet_b1_like, 240)}


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    for name, (build, size) in MODELS.items():
        path = out / f"{name}.onnx"
        torch.onnx.export(build(), (torch.randn(1, 3, size, size),), str(path), input_names=["input"],
                          output_names=["logits"], opset_version=17, dynamo=False)
        print(path)


if __name__ == "__main__":
    main()
