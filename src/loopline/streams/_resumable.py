"""Which positions of `forever` can be saved, and which can go on under another topology.

A position can be restored only where the order of every epoch can be made again: a
sampler whose order is a function of its epoch, a generator that is deterministic given
its shard's seed and epoch, or a loader with its own `state_dict()`. It can go on under
another world size, worker count or batch size only where the rest of an epoch can be
dealt afresh (see `_elastic`): an `EpochSampler`'s order, a generator's full sequence.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch.utils.data import BatchSampler, DataLoader

from loopline.streams._endless import in_order, index_sampler, sampler_replays
from loopline.streams._map_order import dealt_sampler
from loopline.streams.errors import NotResumable
from loopline.streams.protocols import is_checkpointable, is_dealt, is_replayable, is_resizable


def resizable(source: Iterable[Any], kind: str) -> bool:
    """Whether the rest of an epoch can be dealt to another topology (see _elastic)."""
    if not isinstance(source, DataLoader) or not in_order(source):
        return False
    if kind == "iterable":
        return is_resizable(source.dataset)
    sampler = index_sampler(source)
    plain = sampler is source.sampler or type(sampler) is BatchSampler
    return plain and is_dealt(dealt_sampler(sampler))


def check_resumable(source: Iterable[Any], kind: str) -> None:
    """Raise `NotResumable`, saying why and what to use, where no position can be restored."""
    if kind != "generic" and not in_order(source):
        raise NotResumable(
            "forever: a DataLoader with in_order=False returns batches in whatever "
            "order workers finish, so its position cannot be restored exactly; use "
            "in_order=True"
        )
    if kind == "map":
        assert isinstance(source, DataLoader)
        sampler = index_sampler(source)
        if not sampler_replays(sampler):
            inner = getattr(sampler, "sampler", sampler)  # inside a BatchSampler
            raise NotResumable(
                f"forever: the DataLoader's sampler {type(inner).__name__} does not "
                "give the same order when an epoch is replayed (RandomSampler draws a new "
                "one), so its position cannot be restored exactly; pass "
                "sampler=loopline.EpochSampler(dataset, seed=...) instead of shuffle=True"
            )
    elif kind == "iterable":
        assert isinstance(source, DataLoader)
        dataset = source.dataset
        if not is_replayable(dataset):
            raise NotResumable(
                f"forever: the iterable dataset {type(dataset).__name__} cannot be "
                "replayed to a position; build it with loopline.from_generator(fn) from "
                "a generator that is deterministic given loopline.current_shard()'s "
                "seed and epoch"
            )
    elif not is_checkpointable(source):
        raise NotResumable(
            f"forever: {type(source).__name__} has no state_dict()/load_state_dict(), so "
            "its position cannot be restored exactly; wrap a torch DataLoader or a "
            "loader with state_dict()"
        )
