"""What the rank scenarios of tests/_dist_workers.py iterate: generator functions, the
loaders built on them, and batches as plain values.

Everything here is module-level so that spawned DataLoader workers inside a rank can
import it; the workers never need the rank process's own module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

import loopline

# ---------------------------------------------------------------- generator functions


def shuffled(n: int) -> Iterator[int]:
    """A permutation of range(n) fixed by the dataset's (seed, epoch)."""
    shard = loopline.current_shard()
    yield from np.random.default_rng([shard.seed, shard.epoch]).permutation(n).tolist()


def uneven_part(batches_per_rank: list[int], batch_size: int) -> Iterator[int]:
    """Only this rank's items, `batches_per_rank[rank]` batches of them, ids rank * 1000 + i.

    With W DataLoader workers, worker w keeps the items of batches w, w + W, ... so that
    the round robin over workers gives exactly the rank's batches in order.
    """
    shard = loopline.current_shard()
    for i in range(batches_per_rank[shard.rank] * batch_size):
        if (i // batch_size) % shard.num_workers == shard.worker:
            yield shard.rank * 1000 + i


# ---------------------------------------------------------------- helpers


def plain(batch: Any) -> Any:
    """A batch as plain Python values."""
    if isinstance(batch, torch.Tensor):
        return batch.tolist()
    if isinstance(batch, (list, tuple)):
        return [plain(item) for item in batch]
    return batch


def uneven_loader(
    rank: int, style: str, num_workers: int, batches_per_rank: list[int], batch_size: int
) -> DataLoader:
    """A loader that holds `batches_per_rank[rank]` batches on this rank."""
    if style == "map":
        size = batches_per_rank[rank] * batch_size
        dataset: Any = list(range(rank * 1000, rank * 1000 + size))
    elif style == "generator":
        dataset = loopline.from_generator(uneven_part, batches_per_rank, batch_size, sharded=True)
    else:
        raise ValueError(f"unknown loader style {style!r}")
    return DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, **forked(num_workers)
    )


def forked(num_workers: int) -> dict[str, Any]:
    """DataLoader arguments for workers started with fork.

    A rank started with "spawn" starts its DataLoader workers with "spawn" too by default,
    and there torch.distributed is not initialised, so every worker believes it is on
    rank 0 of 1 (the bug test_two_ranks_with_two_workers_each_yield_every_sample_once
    exposes with spawned workers). Tests of other features fork their workers, as a
    rank started by torchrun on Linux would, so that they do not depend on that bug.
    """
    return {"multiprocessing_context": "fork"} if num_workers else {}


def resume_loader(
    rank: int, style: str, num_workers: int, even: bool, n: int, batch_size: int, seed: int
) -> Any:
    """A fresh loader for the resume scenario: the same on every call."""
    if even:
        return loopline.even(uneven_loader(rank, style, num_workers, [5, 3], batch_size))
    if style == "map":
        sampler = loopline.EpochSampler(n, seed=seed)
        return DataLoader(
            list(range(n)),
            sampler=sampler,
            batch_size=batch_size,
            num_workers=num_workers,
            **forked(num_workers),
        )
    if style == "generator":
        dataset = loopline.from_generator(shuffled, n)
        dataset.seed = seed
        return DataLoader(
            dataset, batch_size=batch_size, num_workers=num_workers, **forked(num_workers)
        )
    raise ValueError(f"unknown loader style {style!r}")
