"""Shared helpers for loopline's tests: generator functions workers can import, the
resume contract every checkpointable stage must pass, the loaders `forever` is tested
on, and a graph of two networks for the compose tests."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import loopline
from loopline import Graph, Node


def count_up(n: int) -> Iterator[int]:
    """0, 1, ..., n-1."""
    yield from range(n)


def own_part(n: int) -> Iterator[int]:
    """The positions of range(n) owned by the current shard, computed directly."""
    shard = loopline.current_shard()
    yield from range(shard.index, n, shard.count)


def shuffled_own_part(n: int) -> Iterator[int]:
    """This shard's part of a permutation of range(n) fixed by (seed, epoch)."""
    shard = loopline.current_shard()
    generator = torch.Generator().manual_seed(shard.seed * 1000 + shard.epoch)
    order = torch.randperm(n, generator=generator).tolist()
    yield from order[shard.index :: shard.count]


def report_epoch(n: int) -> Iterator[tuple[int, int]]:
    """(epoch, seed) seen by current_shard(), n times."""
    for _ in range(n):
        shard = loopline.current_shard()
        yield shard.epoch, shard.seed


def fail_at(n: int, bad: int) -> Iterator[int]:
    """0..n-1, raising ValueError when it reaches `bad`."""
    for i in range(n):
        if i == bad:
            raise ValueError(f"corrupt record {i}")
        yield i


def to_plain(batch: Any) -> Any:
    """Tensors and nested containers as plain Python values, for exact comparison."""
    if isinstance(batch, torch.Tensor):
        return batch.tolist()
    if isinstance(batch, (list, tuple)):
        return [to_plain(item) for item in batch]
    if isinstance(batch, dict):
        return {key: to_plain(value) for key, value in batch.items()}
    return batch


def assert_resumes_exactly(make_stage: Callable[[], Any], midpoint: int, total: int) -> None:
    """Iterate a fresh stage to `midpoint`, save, restore into another fresh stage, and
    check the rest equals an uninterrupted run (the resume contract)."""
    reference = [to_plain(batch) for batch in islice(make_stage(), total)]
    assert len(reference) == total, "the stage ended before the comparison window"
    stage = make_stage()
    head = [to_plain(batch) for batch in islice(stage, midpoint)]
    # Through torch.save, as a checkpoint would go.
    buffer = io.BytesIO()
    torch.save(copy.deepcopy(stage.state_dict()), buffer)
    del stage
    buffer.seek(0)
    restored = make_stage()
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    tail = [to_plain(batch) for batch in islice(restored, total - midpoint)]
    assert head + tail == reference


def ragged(n):
    """n tensors filled with their position, of lengths 1..9 that change with the epoch."""
    epoch = loopline.current_shard().epoch
    for i in range(n):
        yield torch.full((1 + (i * 7 + epoch * 3) % 9,), i)


def flat(batches):
    return [i for batch in batches for i in batch]


def epoch_batches(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def padding_efficiency(lengths, batches):
    """Real elements over padded elements: sum(lengths) / sum(len(batch) * longest)."""
    real = sum(lengths[i] for batch in batches for i in batch)
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    return real / padded


def uniform_lengths(count=20_000, seed=0):
    return np.random.default_rng(seed).integers(1, 513, count)


# ---------------------------------------------------------------- loaders for forever


def map_loader(num_workers=0, size=11, batch_size=3, **options):
    dataset = TensorDataset(torch.arange(size))
    sampler = loopline.EpochSampler(dataset, seed=3)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, **options
    )


def generator_loader(num_workers=0, size=21, batch_size=5, **options):
    # With 2 workers the shards have 11 and 10 items: 3 and 2 batches, uneven on purpose.
    dataset = loopline.from_generator(shuffled_own_part, size, sharded=True)
    dataset.seed = 2
    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, **options)


def plain_epochs(loader, epochs):
    """What a hand-written epoch loop over the same loader yields."""
    batches = []
    for epoch in range(epochs):
        for part in (loader.sampler, loader.dataset):
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)
        batches += [to_plain(batch) for batch in loader]
    return batches


# The loader makers by kind, for tests parametrized over the two kinds.
MAKERS = {"map": map_loader, "generator": generator_loader}


# ---------------------------------------------------------------- a graph of two networks


def two_networks(detach):
    """first: x -> h, second: h -> y, with `detach` on second's edge; the graph, both
    networks and an input x of shape [16, 6]."""
    torch.manual_seed(0)
    first = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))
    second = nn.Linear(4, 2)
    graph = Graph(
        [
            Node("first", first, inputs="x", output="h"),
            Node("second", second, inputs="h", output="y", detach=detach),
        ],
        inputs=["x"],
        outputs=["h", "y"],
    )
    return graph, first, second, torch.randn(16, 6)
