"""char_model_resume.py's job in plain PyTorch: workers sharded by hand, resume by skipping."""

from __future__ import annotations

import io
from itertools import islice

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


class RandomSlices(IterableDataset):
    def __init__(self, tokens: torch.Tensor, block: int, count: int, seed: int) -> None:
        super().__init__()
        self.tokens, self.block, self.count, self.seed = tokens, block, count, seed
        self.epoch = 0  # set before each epoch: the workers copy the dataset when they start

    def __iter__(self):
        # Every worker draws the epoch's same starts and keeps its own share: no duplicates.
        rng = np.random.default_rng([self.seed, self.epoch])
        starts = rng.integers(0, len(self.tokens) - self.block - 1, self.count).tolist()
        info = get_worker_info()
        if info is not None:
            starts = starts[info.id :: info.num_workers]
        for start in starts:
            yield self.tokens[start : start + self.block + 1]


def make_loader_plain(tokens, block: int, count: int, seed: int, batch: int):
    dataset = RandomSlices(tokens, block, count, seed)
    return dataset, DataLoader(dataset, batch_size=batch, num_workers=2)


def train_step_plain(model, optimizer, batch: torch.Tensor) -> float:
    inputs, targets = batch[:, :-1].T, batch[:, 1:].T
    logits = model(inputs)
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def train_plain(model, optimizer, dataset, loader, position=(0, 0)):
    epoch, done = position
    while True:
        dataset.epoch = epoch
        # A resumed epoch is replayed: the workers make the batches done already, and they
        # are dropped here.
        for step, batch in enumerate(islice(loader, done, None), done + 1):
            yield train_step_plain(model, optimizer, batch), (epoch, step)
        epoch, done = epoch + 1, 0


def save_plain(model, optimizer, position) -> bytes:
    buffer = io.BytesIO()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    state["position"] = position
    torch.save(state, buffer)
    return buffer.getvalue()


def resume_plain(checkpoint: bytes, model, optimizer, dataset, loader):
    saved = torch.load(io.BytesIO(checkpoint))
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    return train_plain(model, optimizer, dataset, loader, saved["position"])
