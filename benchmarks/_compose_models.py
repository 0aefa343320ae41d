"""The models of benchmarks/compose.py's forward figure, each written twice over the same
submodules: as the `nn.Module` a person would write, and as a `Graph`."""

from __future__ import annotations

import torch
from torch import nn

import loopline
from loopline import Concat, Graph, Node, Spec


class ConcatByHand(nn.Module):
    def __init__(self, a: nn.Module, b: nn.Module, final: nn.Module) -> None:
        super().__init__()
        self.a, self.b, self.final = a, b, final

    def forward(self, batch: dict) -> dict:
        x = batch["x"]
        return {"y": self.final(torch.cat((self.a(x), self.b(x)), dim=-1))}


def concat_models(batch_size: int) -> tuple[nn.Module, Graph, dict]:
    """The common question's example 1: two models on one input, then a final layer."""
    a, b, final = nn.Linear(10, 5), nn.Linear(10, 7), nn.Linear(12, 1)
    graph = Graph(
        [
            Node("a", a, inputs="x"),
            Node("b", b, inputs="x"),
            Concat(["a", "b"], "ab"),
            Node("final", final, inputs="ab", output="y"),
        ],
        inputs={"x": Spec(("B", 10))},
        outputs=["y"],
    )
    return ConcatByHand(a, b, final), graph, {"x": torch.randn(batch_size, 10)}


class ChainByHand(nn.Module):
    def __init__(self, layers: nn.ModuleList) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, batch: dict) -> dict:
        x = batch["x"]
        for layer in self.layers:
            x = torch.sigmoid(layer(x))
        return {"y": x}


def chain_models(batch_size: int, depth: int = 8, width: int = 32) -> tuple[nn.Module, Graph, dict]:
    """Linear layers with a transform (sigmoid) after each: 2 * depth nodes."""
    layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
    nodes, key = [], "x"
    for i, layer in enumerate(layers):
        out = "y" if i == depth - 1 else f"s{i}"
        nodes += [
            Node(f"linear{i}", layer, inputs=key),
            Node(out, torch.sigmoid, inputs=f"linear{i}"),
        ]
        key = out
    graph = Graph(nodes, inputs={"x": Spec(("B", width))}, outputs=["y"])
    return ChainByHand(layers), graph, {"x": torch.randn(batch_size, width)}


class TextEncoder(nn.Module):
    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)

    def forward(self, text: loopline.Padded) -> torch.Tensor:
        data, mask, lengths = text
        x = self.embed(data) * mask[..., None]  # [B, T, D], zero on padding
        return x.sum(dim=1) / lengths[:, None]  # [B, D]


class MultimodalByHand(nn.Module):
    def __init__(self, text: nn.Module, image: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.text, self.image, self.head = text, image, head

    def forward(self, batch: dict) -> dict:
        features = torch.cat((self.text(batch["text"]), self.image(batch["image"])), dim=-1)
        return {"logits": self.head(features)}


def multimodal_models(batch_size: int) -> tuple[nn.Module, Graph, dict]:
    """Padded text and 32x32 images, two encoders, concatenated, a head."""
    text = TextEncoder(61, 16)
    image = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    head = nn.Linear(32, 3)
    graph = Graph(
        [
            Node("text_encoder", text, inputs="text", output="text_feat"),
            Node("image_encoder", image, inputs="image", output="image_feat"),
            Concat(["text_feat", "image_feat"], "features"),
            Node("head", head, inputs="features", output="logits"),
        ],
        inputs={
            "text": Spec(("B", "T"), torch.int64, padded=True),
            "image": Spec(("B", 3, 32, 32)),
        },
        outputs=["logits"],
    )
    generator = torch.Generator().manual_seed(0)
    samples = [
        {
            "text": torch.randint(1, 61, (int(n),), generator=generator),
            "image": torch.randn(3, 32, 32, generator=generator),
        }
        for n in torch.randint(4, 41, (batch_size,), generator=generator)
    ]
    batch = loopline.pad_collate(samples, pad_keys={"text"})
    return MultimodalByHand(text, image, head), graph, batch


FORWARD_MODELS = [  # name, builder, batch size, calls per timing, rounds
    ("two Linear models concatenated, 10 -> 5 + 7 -> 1, batch 32", concat_models, 32, 400, 41),
    ("chain of 8 Linear 32 -> 32 + sigmoid (16 nodes), batch 32", chain_models, 32, 200, 41),
    ("text (Padded) + conv image encoders + head, batch 16", multimodal_models, 16, 10, 31),
]
