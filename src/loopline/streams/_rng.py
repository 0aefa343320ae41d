"""Random draws that resume: the global RNGs seeded per sample from (seed, epoch, index).

A `__getitem__` or a generator that draws from torch's, numpy's or Python's global RNG
(as torchvision's random transforms do) makes a sample depend on every draw before it,
in its worker, since the worker started; a resumed run, or one with other workers or
ranks, then draws other numbers. Seeding those RNGs before each sample from the sample's
own key makes its draws a pure function of (seed, epoch, sample index), whatever came
before. In the main process (no workers) the caller's own RNG states (model init,
dropout) are saved before the stream makes a batch and put back after it, so they go on
exactly as if the stream had drawn nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

RNGS = ("torch", "numpy", "random")
_MASK = (1 << 64) - 1


def rng_names(reseed: Any) -> tuple[str, ...]:
    """The RNGs `forever(reseed=...)` seeds: all for True, none for False, or those named."""
    if reseed is True:
        return RNGS
    if reseed is False:
        return ()
    names = (reseed,) if isinstance(reseed, str) else reseed
    if not isinstance(names, (tuple, list)) or not set(names) <= set(RNGS) or not names:
        raise ValueError(
            f"forever: reseed must be True, False or some of {list(RNGS)}, got {reseed!r}"
        )
    return tuple(name for name in RNGS if name in names)


def sample_key(seed: int, epoch: int, index: int) -> int:
    """A 64-bit seed from (seed, epoch, index): distinct for every sample of every epoch."""
    key = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index) & _MASK
    key = ((key ^ (key >> 31)) * 0x94D049BB133111EB) & _MASK
    return key ^ (key >> 29)


def _seed_torch(key: int) -> None:
    torch.default_generator.manual_seed(key)  # CPU only: 1 us, where manual_seed is 100


def _seed_numpy(key: int) -> None:
    np.random.seed(key & 0xFFFFFFFF)


_SEEDERS: dict[str, Callable[[int], None]] = {
    "torch": _seed_torch,
    "numpy": _seed_numpy,
    "random": random.seed,
}


class Reseeder:
    """Seeds the named global RNGs for one sample; pickles to DataLoader workers."""

    def __init__(self, names: tuple[str, ...], seed: int) -> None:
        self.names = names
        self.seed = seed
        self._seeders = [_SEEDERS[name] for name in names]

    def __call__(self, epoch: int, index: int) -> None:
        key = sample_key(self.seed, epoch, index)
        for seed in self._seeders:
            seed(key)


@contextmanager
def callers_rngs(names: tuple[str, ...]) -> Iterator[None]:
    """Put the named global RNGs back as they were once the block ends."""
    saved: list[tuple[Callable[[Any], Any], Any]] = []
    if "torch" in names:
        saved.append((torch.default_generator.set_state, torch.default_generator.get_state()))
    if "numpy" in names:
        saved.append((np.random.set_state, np.random.get_state()))
    if "random" in names:
        saved.append((random.setstate, random.getstate()))
    try:
        yield
    finally:
        for restore, state in saved:
            restore(state)


class SeededDataset:
    """A map-style dataset fetched by `(epoch, index)` keys, seeding before each sample."""

    def __init__(self, dataset: Any, reseeder: Reseeder) -> None:
        self.dataset = dataset
        self.reseeder = reseeder

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, Any]) -> Any:
        epoch, index = key
        self.reseeder(epoch, index)
        return self.dataset[index]
