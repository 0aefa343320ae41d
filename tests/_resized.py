"""Simulated jobs for the elastic resume tests: ranks run one after another in this
process (a map-style rank is an `EpochSampler(rank=..., world_size=...)`, a generator's
rank is set as the place a spawned worker inherits), each takes some batches and saves,
and the joined state resumes a job of another topology to the end of the epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils.data import DataLoader

import loopline
from loopline.streams import shard as shard_module


@contextmanager
def as_rank(rank: int, world_size: int) -> Iterator[None]:
    """Run as `rank` of `world_size` without torch.distributed (a test-only stand-in)."""
    shard_module._inherited.append((rank, world_size))
    try:
        yield
    finally:
        shard_module._inherited.pop()


def map_job(size: int, world_size: int, batch_size: int, workers: int = 0, seed: int = 5):
    """The loader maker of a map-style job: rank -> DataLoader."""
    samples = list(range(size))

    def make(rank: int) -> DataLoader:
        sampler = loopline.EpochSampler(size, seed=seed, rank=rank, world_size=world_size)
        return DataLoader(samples, batch_size=batch_size, sampler=sampler, num_workers=workers)

    return make


def generator_job(fn: Callable[..., Any], size: int, batch_size: int, workers: int = 0, **kw):
    """The loader maker of a from_generator job: rank -> DataLoader."""

    def make(rank: int) -> DataLoader:
        dataset = loopline.from_generator(fn, size, **kw)
        return DataLoader(dataset, batch_size=batch_size, num_workers=workers)

    return make


def run_job(
    make: Callable[[int], DataLoader],
    world_size: int,
    takes: Sequence[float | None],
    state: dict[str, Any] | None = None,
) -> tuple[list[int], dict[str, Any]]:
    """Every rank resumes `state` (if any) and takes `takes[rank]` batches of epoch 0 (an
    int), that fraction of what it has left (a float), or all of it (None); returns the
    samples delivered and the joined state."""
    delivered: list[int] = []
    states = []
    for rank in range(world_size):
        with as_rank(rank, world_size):
            take = takes[rank]
            if isinstance(take, float):
                take = int(take * len(list(resumed(make(rank), state))))
            stream = resumed(make(rank), state)
            for _, batch in zip(range(take if take is not None else 10**9), stream, strict=False):
                delivered += torch.as_tensor(batch).flatten().tolist()
            states.append(stream.state_dict())
            stream.close()
    return delivered, loopline.merge_states(states)


def resumed(loader: DataLoader, state: dict[str, Any] | None) -> loopline.Forever:
    """forever(loader) over epoch 0, resumed at `state` if one is given."""
    stream = loopline.forever(loader, epochs=1)
    if state is not None:
        stream.load_state_dict(state)
    return stream
