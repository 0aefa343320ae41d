"""How do I route text and images in one batch to different models, then combine them?

Each sample is `{"text": tokens [T_i], "image": [3, 32, 32], "label": int}`; a DataLoader
with `loopline.pad_collate` as its collate function pads the text into `Padded(data, mask,
lengths)` and stacks the images. A `loopline.Graph` routes each key to its encoder,
concatenates their features and classifies them. The graph's inputs carry contracts:
`Spec(("B", "T"), int64, padded=True)` for the text, `Spec(("B", 3, 32, 32))` for images,
where "B" must be the same in both. `graph.check(batch)` finds an image batch in
channels-last layout, or a text batch that was stacked instead of padded, before training
starts. The data is generated in code; nothing is downloaded.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import loopline

VOCAB, CLASSES, DIM, BATCH, SAMPLES, SEED = 61, 3, 16, 16, 320, 0
# Text always comes back Padded, with its mask, even when a batch is equally long.
COLLATE = functools.partial(loopline.pad_collate, pad_keys={"text"})


class TextImageDataset(Dataset):
    """Sample i is a fixed function of (seed, i); class c favours tokens of the c-th third
    of the vocabulary and brightens image channel c."""

    def __init__(self, size: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.seed, self.labels = seed, rng.integers(CLASSES, size=size)
        self.text_lengths = rng.integers(4, 41, size=size)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, i])
        label, length, third = int(self.labels[i]), self.text_lengths[i], (VOCAB - 1) // CLASSES
        own = rng.integers(1, third + 1, size=length) + label * third
        text = np.where(rng.random(length) < 0.7, own, rng.integers(1, VOCAB, size=length))
        image = rng.standard_normal((3, 32, 32)).astype(np.float32)
        image[label] += 0.5
        return {"text": torch.from_numpy(text), "image": torch.from_numpy(image), "label": label}


class TextEncoder(nn.Module):
    """Embedding, then the mean over the real tokens: it reads the Padded's mask."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)

    def forward(self, text: loopline.Padded) -> torch.Tensor:
        data, mask, lengths = text
        x = self.embed(data) * mask[..., None]  # x: [B, T, D], zero on padding
        return x.sum(dim=1) / lengths[:, None]  # [B, D]


def image_encoder() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1),  # [B, 8, 16, 16]
        nn.ReLU(),
        nn.Conv2d(8, DIM, kernel_size=3, stride=2, padding=1),  # [B, D, 8, 8]
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),  # [B, D]
    )


def classifier() -> loopline.Graph:
    torch.manual_seed(SEED)
    return loopline.Graph(
        [
            loopline.Node("text_encoder", TextEncoder(), inputs="text", output="text_feat"),
            loopline.Node("image_encoder", image_encoder(), inputs="image", output="image_feat"),
            loopline.Concat(["text_feat", "image_feat"], "features", name="fuse"),  # [B, 2D]
            loopline.Node("head", nn.Linear(2 * DIM, CLASSES), inputs="features", output="logits"),
        ],
        inputs={
            "text": loopline.Spec(("B", "T"), torch.int64, padded=True),
            "image": loopline.Spec(("B", 3, 32, 32), torch.float32),
        },
        outputs=["logits"],
    )


def train(graph: loopline.Graph, loader: DataLoader) -> None:
    optimizer = torch.optim.Adam(graph.parameters(), lr=0.01)
    losses = []
    for _ in range(2):
        for batch in loader:
            loss = nn.functional.cross_entropy(graph(batch)["logits"], batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    print(f"two epochs: loss {first:.3f} -> {last:.3f}")
    print(f"loss decreased: {last < 0.8 * first}")


def caught(graph: loopline.Graph, batch: dict, what: str, expected: str) -> None:
    try:
        graph.check(batch)
    except loopline.GraphError as error:
        print(f"GraphError: {error}")
        print(f"{what}: {expected in str(error)}")


def main() -> None:
    dataset = TextImageDataset(SAMPLES, SEED)
    sampler = loopline.BucketSampler(dataset.text_lengths, BATCH, seed=SEED)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=COLLATE)
    graph = classifier()
    print(graph.check())  # from the specs alone: B and T get sizes of their own
    batch = next(iter(loader))
    graph.check(batch)  # and on a real batch: its sizes, its values
    print(f"checked on specs and on a real batch: {'from a batch' in graph.summary()}")
    train(graph, loader)

    channels_last = dict(batch, image=batch["image"].permute(0, 2, 3, 1))  # as from PIL
    caught(graph, channels_last, "channels-last image caught", "channels-last layout?")
    stacked = loopline.pad_collate([dataset[0], dataset[0]])  # equal lengths, no pad_keys
    caught(graph, stacked, "stacked text caught", "expected Padded (B, T) int64")


if __name__ == "__main__":
    main()
