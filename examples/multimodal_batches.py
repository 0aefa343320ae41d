"""How can I feed text and images together to models that I combine?

Let each sample be a dict, `{"text": tokens [T_i], "image": [3, 32, 32], "label": int}`,
and batch it with `loopline.pad_collate` (`pad_keys={"text"}`): the text, whose length differs from
sample to sample, comes back as `Padded(data, mask, lengths)`; the images, all one shape,
are stacked; the labels become a tensor. `loopline.BucketSampler` groups texts of similar
length, so the padding stays small. A text encoder (embedding, masked mean) and an image
encoder (small conv net) each make features, and a head classifies their concatenation.
Last, a sample without "image" shows the error pad_collate gives: it names the sample.

The data is generated in code; nothing is downloaded.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import loopline

# Text always comes back Padded, with its mask, even when a batch is equally long.
COLLATE = functools.partial(loopline.pad_collate, pad_keys={"text"})

SAMPLES = 320
MIN_LEN, MAX_LEN = 4, 40
VOCAB = 61  # token 0 is padding; class c favours tokens in the c-th third of 1..60
CLASSES = 3  # class c also brightens image channel c
BATCH = 16
DIM = 16
SEED = 0


class TextImageDataset(Dataset):
    """Map-style: sample i is a fixed function of (seed, i); its text length is known up front."""

    def __init__(self, size: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.text_lengths = rng.integers(MIN_LEN, MAX_LEN + 1, size=size)
        self.labels = rng.integers(CLASSES, size=size)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, i])
        label = int(self.labels[i])
        third = (VOCAB - 1) // CLASSES
        own = rng.integers(1, third + 1, size=self.text_lengths[i]) + label * third
        anywhere = rng.integers(1, VOCAB, size=self.text_lengths[i])
        text = np.where(rng.random(self.text_lengths[i]) < 0.7, own, anywhere)
        image = rng.standard_normal((3, 32, 32)).astype(np.float32)
        image[label] += 0.5
        return {
            "text": torch.from_numpy(text.astype(np.int64)),  # [T_i]
            "image": torch.from_numpy(image),  # [3, 32, 32]
            "label": label,
        }


# ------------------------------------------------------------------------ the models


class TextEncoder(nn.Module):
    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)

    def forward(self, text: loopline.Padded) -> torch.Tensor:
        data, mask, lengths = text
        x = self.embed(data) * mask[..., None]  # x: [B, T, D], zero on padding
        return x.sum(dim=1) / lengths[:, None]  # [B, D], the mean over real tokens


class ImageEncoder(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1),  # [B, 8, 16, 16]
            nn.ReLU(),
            nn.Conv2d(8, dim, kernel_size=3, stride=2, padding=1),  # [B, D, 8, 8]
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),  # [B, D, 1, 1]
            nn.Flatten(),  # [B, D]
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class TextImageClassifier(nn.Module):
    """Two encoders whose features are concatenated into one linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.text = TextEncoder(VOCAB, DIM)
        self.image = ImageEncoder(DIM)
        self.head = nn.Linear(2 * DIM, CLASSES)

    def forward(self, batch: dict) -> torch.Tensor:
        features = torch.cat([self.text(batch["text"]), self.image(batch["image"])], dim=1)
        return self.head(features)  # features: [B, 2D] -> [B, classes]


# ------------------------------------------------------------------------ the parts


def describe(batch: dict) -> None:
    text = batch["text"]
    if isinstance(text, loopline.Padded):
        print(
            f"    text:  Padded data {tuple(text.data.shape)} {text.data.dtype}, "
            f"mask {tuple(text.mask.shape)}, lengths {text.lengths.tolist()}"
        )
    else:  # every text in the batch happened to be equally long
        print(f"    text:  stacked {tuple(text.shape)} {text.dtype}")
    print(f"    image: {tuple(batch['image'].shape)} {batch['image'].dtype}")
    print(f"    label: {tuple(batch['label'].shape)} {batch['label'].dtype}")
    ok = isinstance(text, loopline.Padded) and batch["image"].shape == (len(text.data), 3, 32, 32)
    print(f"text padded, images stacked: {ok}")


def train() -> None:
    dataset = TextImageDataset(SAMPLES, SEED)
    sampler = loopline.BucketSampler(dataset.text_lengths, BATCH, seed=SEED)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=COLLATE, num_workers=2)
    torch.manual_seed(SEED)
    model = TextImageClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    print(f"one epoch, {len(loader)} batches of {BATCH} (BucketSampler on text length):")
    for step, batch in enumerate(loader):
        if step == 0:
            describe(batch)
        loss = nn.functional.cross_entropy(model(batch), batch["label"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 5 == 0 or step == len(loader) - 1:
            print(f"    step {step:2d}: loss {loss.item():.3f}")


def missing_image() -> None:
    print("a sample without 'image':")
    samples = [TextImageDataset(4, SEED)[i] for i in range(4)]
    del samples[2]["image"]
    loader = DataLoader(samples, batch_size=4, collate_fn=COLLATE)
    try:
        next(iter(loader))
    except ValueError as error:
        print(f"    ValueError: {error}")
        print(f"missing image named: {'sample 2' in str(error) and 'image' in str(error)}")


def main() -> None:
    train()
    missing_image()


if __name__ == "__main__":
    main()
