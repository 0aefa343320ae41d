"""Shared helpers for loopline's tests: generator functions workers can import, and the
resume contract every checkpointable stage must pass."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

import numpy as np
import torch

import loopline


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
