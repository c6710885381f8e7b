"""More model classes for the benchmark, built from code with random weights.

EfficientNet-B0 (MBConv: depthwise 3x3/5x5, squeeze-excite, SiLU), a small UNet (ConvTranspose
and bilinear Resize decoder, Concat skips, BatchNorm), a YOLO-style detector (conv-BN-LeakyReLU,
SPPF max-pools, nearest Upsample, box decode), a ConvNeXt block stack (7x7 depthwise, LayerNorm
over channels, GELU), a two-layer bidirectional LSTM tagger, and a Whisper-like encoder (two
Conv1d + GELU, then pre-norm transformer layers). Layer structure follows the published models;
sizes are chosen so that one run takes milliseconds to tens of milliseconds on one core.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bench.cnn import randomise_batchnorm

SEED = 0


def _rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


# ---------------------------------------------------------------- EfficientNet-B0


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(nn.functional.silu(self.reduce(s))))


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
            act: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, *([act] if act is not None else []))


class InvertedResidual(nn.Module):
    """`layers` in sequence, plus the input where they keep its shape (stride 1, cin == cout)."""

    def __init__(self, layers: list[nn.Module], cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class MBConv(InvertedResidual):
    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int) -> None:
        mid = cin * expand
        layers: list[nn.Module] = [conv_bn(cin, mid, 1, act=nn.SiLU())] if expand != 1 else []
        layers += [conv_bn(mid, mid, k, stride, mid, nn.SiLU()), SqueezeExcite(mid, max(1, cin // 4)),
                   conv_bn(mid, cout, 1)]
        super().__init__(layers, cin, cout, stride)


def efficientnet_b0_module() -> nn.Module:
    # (expand ratio, channels, repeats, stride, kernel) of torchvision's efficientnet_b0
    stages = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3), (6, 112, 3, 1, 5),
              (6, 192, 4, 2, 5), (6, 320, 1, 1, 3)]
    layers: list[nn.Module] = [conv_bn(3, 32, 3, 2, act=nn.SiLU())]
    cin = 32
    for expand, cout, repeats, stride, k in stages:
        for i in range(repeats):
            layers.append(MBConv(cin, cout, expand, k, stride if i == 0 else 1))
            cin = cout
    layers += [conv_bn(cin, 1280, 1, act=nn.SiLU()), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000)]
    model = nn.Sequential(*layers)
    randomise_batchnorm(model, torch.Generator().manual_seed(SEED))
    return model.eval()


def image_224() -> dict[str, np.ndarray]:
    return {"input": _rng().standard_normal((1, 3, 224, 224), dtype=np.float32)}


# ---------------------------------------------------------------- UNet


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn(cin, cout, 3, act=nn.ReLU()), conv_bn(cout, cout, 3, act=nn.ReLU()))


class UNet(nn.Module):
    """Four levels (32..256 channels); the decoder upsamples by ConvTranspose 2x2 s2 except at the last
    level, which uses bilinear Resize and a 1x1 conv."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), classes: int = 2) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        cin = 3
        for w in widths:
            self.down.append(double_conv(cin, w))
            cin = w
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for i, w in enumerate(reversed(widths[:-1])):
            last = i == len(widths) - 2
            up: nn.Module = (nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(cin, w, 1))
                             if last else nn.ConvTranspose2d(cin, w, 2, stride=2))
            self.up.append(up)
            self.merge.append(double_conv(2 * w, w))
            cin = w
        self.head = nn.Conv2d(cin, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1])):
            x = merge(torch.cat([up(x), skip], 1))
        return self.head(x)


def unet_module() -> nn.Module:
    model = UNet()
    randomise_batchnorm(model, torch.Generator().manual_seed(SEED))
    return model.eval()


def image_128() -> dict[str, np.ndarray]:
    return {"input": _rng().standard_normal((1, 3, 128, 128), dtype=np.float32)}


# ---------------------------------------------------------------- YOLO-style detector


def cbl(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return conv_bn(cin, cout, k, stride, act=nn.LeakyReLU(0.1))


class SPPF(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.reduce, self.pool, self.out = cbl(cin, cin // 2, 1), nn.MaxPool2d(5, 1, 2), cbl(cin * 2, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.out(torch.cat([x, y1, y2, self.pool(y2)], 1))


class YoloHead(nn.Module):
    """Backbone of strided conv-BN-LeakyReLU (320 -> 10), SPPF, one nearest-upsample FPN step and two
    detection outputs (3 anchors x (4 box + 1 object + 16 classes)) with the box decode."""

    def __init__(self, classes: int = 16) -> None:
        super().__init__()
        widths = [16, 32, 64, 128, 256]
        layers, cin = [], 3
        for w in widths:
            layers.append(nn.Sequential(cbl(cin, w, 3, 2), cbl(w, w, 3)))
            cin = w
        self.stages = nn.ModuleList(layers)
        self.sppf = SPPF(256, 256)
        self.lateral = cbl(256, 128, 1)
        self.fuse = cbl(256, 128, 3)
        self.outs = 5 + classes
        self.detect = nn.ModuleList([nn.Conv2d(256, 3 * self.outs, 1), nn.Conv2d(128, 3 * self.outs, 1)])

    def _decode(self, p: torch.Tensor, stride: int) -> torch.Tensor:
        b, _, h, w = p.shape
        p = p.view(b, 3, self.outs, h, w).permute(0, 1, 3, 4, 2).sigmoid()
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
        grid = torch.stack([xs, ys], -1).view(1, 1, h, w, 2)
        xy = (p[..., :2] * 2 - 0.5 + grid) * stride
        wh = (p[..., 2:4] * 2) ** 2 * 32
        return torch.cat([xy, wh, p[..., 4:]], -1).view(b, -1, self.outs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        deep = self.sppf(x)
        up = nn.functional.interpolate(self.lateral(deep), scale_factor=2, mode="nearest")
        mid = self.fuse(torch.cat([up, feats[3]], 1))
        return torch.cat([self._decode(self.detect[0](deep), 32), self._decode(self.detect[1](mid), 16)], 1)


def yolo_module() -> nn.Module:
    model = YoloHead()
    randomise_batchnorm(model, torch.Generator().manual_seed(SEED))
    return model.eval()


def image_320() -> dict[str, np.ndarray]:
    return {"input": _rng().standard_normal((1, 3, 320, 320), dtype=np.float32)}


# ---------------------------------------------------------------- ConvNeXt


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of NCHW (ConvNeXt's channels_first LayerNorm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc2(nn.functional.gelu(self.fc1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


def convnext_module() -> nn.Module:
    """ConvNeXt-T's first two stages (stem 4x4 s4, 3 blocks at 96 channels, downsample, 3 at 192)."""
    layers: list[nn.Module] = [nn.Conv2d(3, 96, 4, 4), ChannelNorm(96)]
    layers += [ConvNeXtBlock(96) for _ in range(3)]
    layers += [ChannelNorm(96), nn.Conv2d(96, 192, 2, 2)]
    layers += [ConvNeXtBlock(192) for _ in range(3)]
    return nn.Sequential(*layers).eval()


# ---------------------------------------------------------------- LSTM tagger


class Tagger(nn.Module):
    """Embedding, a two-layer bidirectional recurrent layer (`rnn`: nn.LSTM or nn.GRU), a per-token classifier."""

    def __init__(
        self, vocab: int = 5000, emb: int = 128, hidden: int = 256, tags: int = 20, rnn: type = nn.LSTM
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.lstm = rnn(emb, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.out = nn.Linear(2 * hidden, tags)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.lstm(self.embed(ids))[0])


def tagger_module() -> nn.Module:
    return Tagger().eval()


def token_ids() -> dict[str, np.ndarray]:
    return {"ids": _rng().integers(0, 5000, (1, 32), dtype=np.int64)}


# ---------------------------------------------------------------- Whisper-like encoder


class EncoderLayer(nn.Module):
    """Pre-norm self-attention and GELU feed-forward, as in Whisper's encoder."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) * (d // self.heads) ** -0.5, -1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class WhisperLike(nn.Module):
    def __init__(self, mels: int = 80, dim: int = 384, heads: int = 6, layers: int = 4, positions: int = 500) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(mels, dim, 3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, 3, stride=2, padding=1)
        self.pos = nn.Parameter(torch.randn(positions, dim) * 0.02)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.conv2(nn.functional.gelu(self.conv1(mel)))).transpose(1, 2) + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


def whisper_module() -> nn.Module:
    return WhisperLike().eval()


def mel_frames() -> dict[str, np.ndarray]:
    return {"mel": _rng().standard_normal((1, 80, 1000), dtype=np.float32)}
