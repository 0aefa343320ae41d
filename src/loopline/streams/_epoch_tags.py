"""Epoch tags for a map-style loader with `in_order=False`, whose batches come as they are done.

In order, the i-th batch received is the i-th handed out, so the consumer knows each
batch's epoch by counting. Out of order it cannot: a slow batch of epoch 0 may arrive
after batches of epoch 1. So the endless sampler puts an `EpochMark` in front of every
batch's indices, the dataset wrapper passes it through the fetch, and the collate wrapper
turns the batch into `(epoch, batch)`: one small object per batch, none per sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from torch.utils.data import Dataset


class EpochMark(NamedTuple):
    """The epoch of the indices that follow it (a NamedTuple, so it pickles to workers)."""

    epoch: int


class MarkedDataset(Dataset):
    """`dataset`, fetching `[EpochMark, *indices]` (or `(EpochMark, index)` unbatched)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[EpochMark, Any]) -> tuple[EpochMark, Any]:
        mark, index = key
        return mark, self.dataset[index]

    def __getitems__(self, keys: Sequence[Any]) -> list[Any]:
        mark, indices = keys[0], list(keys[1:])
        getitems = getattr(self.dataset, "__getitems__", None)
        items = getitems(indices) if callable(getitems) else [self.dataset[i] for i in indices]
        return [mark, *items]


class MarkedCollate:
    """The loader's collate_fn, returning `(epoch, batch)` for a marked fetch."""

    def __init__(self, collate_fn: Callable[[Any], Any], batched: bool) -> None:
        self.collate_fn = collate_fn
        self.batched = batched

    def __call__(self, data: Any) -> tuple[int, Any]:
        if self.batched:  # [EpochMark, sample, sample, ...]
            return data[0].epoch, self.collate_fn(data[1:])
        mark, sample = data
        return mark.epoch, self.collate_fn(sample)
