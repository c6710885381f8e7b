"""Make the dynamic-shape test models: torch exports with symbolic dims, small random weights.

    python tests/assets/make_dynamic_models.py     (needs the bench extra: torch, transformers)

- gpt2_tiny_dyn.onnx: transformers' GPT2LMHeadModel (2 layers, width 32, 4 heads, 100 tokens),
  inputs input_ids and attention_mask of [batch, seq], exported by the TorchScript exporter
  with dynamic axes (the Shape/Gather/Concat/Reshape arithmetic and the causal mask of real exports).
- gpt2_tiny_dyn_dynamo.onnx: the same model through the dynamo exporter (torch.export Dims).
- bert_tiny_dyn.onnx: transformers' BertModel (2 layers, width 32, 4 heads, 100 tokens), inputs
  input_ids, attention_mask and token_type_ids of [batch, seq], outputs last_hidden_state and
  pooler_output (TorchScript exporter, dynamic axes).
- resnet_tiny_dyn.onnx: a ResNet-style CNN (7x7 s2 stem, max pool, three basic blocks, global
  pool, linear) with input [batch, 3, 64, 64].
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from torch import nn

HERE = Path(__file__).resolve().parent


class GPT2Logits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=100, n_positions=128, use_cache=False,
                            attn_implementation="eager")  # fmt: skip
        self.model = GPT2LMHeadModel(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


class Bert(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        config = BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                            vocab_size=100, max_position_embeddings=128, attn_implementation="eager")  # fmt: skip
        self.model = BertModel(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return out.last_hidden_state, out.pooler_output


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def resnet() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 7, 2, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
        Block(8, 8, 1), Block(8, 16, 2), Block(16, 32, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def main() -> None:
    torch.manual_seed(0)
    gpt2 = GPT2Logits().eval()
    ids, mask = torch.randint(0, 100, (2, 16)), torch.ones(2, 16, dtype=torch.int64)
    names = {"input_names": ["input_ids", "attention_mask"], "output_names": ["logits"]}
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}}
    batch, seq = torch.export.Dim("batch", max=64), torch.export.Dim("seq", max=128)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(gpt2, (ids, mask), HERE / "gpt2_tiny_dyn.onnx", opset_version=17, dynamo=False,
                          dynamic_axes=axes, **names)  # fmt: skip
        torch.onnx.export(gpt2, (ids, mask), HERE / "gpt2_tiny_dyn_dynamo.onnx", opset_version=18, dynamo=True,
                          dynamic_shapes=({0: batch, 1: seq},) * 2, external_data=False, **names)  # fmt: skip
        bert_names = ["input_ids", "attention_mask", "token_type_ids"]
        torch.onnx.export(Bert().eval(), (ids, mask, torch.zeros_like(ids)), HERE / "bert_tiny_dyn.onnx",
                          opset_version=17, dynamo=False, input_names=bert_names,
                          output_names=["last_hidden_state", "pooler_output"],
                          dynamic_axes={n: {0: "batch", 1: "seq"} for n in bert_names})  # fmt: skip
        torch.onnx.export(resnet(), (torch.randn(2, 3, 64, 64),), HERE / "resnet_tiny_dyn.onnx", opset_version=17,
                          dynamo=False, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}})  # fmt: skip


if __name__ == "__main__":
    main()
