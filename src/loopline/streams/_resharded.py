"""A sharded generator's epoch under another topology: the old shards' parts, handed on.

A `sharded=True` generator makes only its own part, and what that part holds depends on
its shard, so what is left of its epoch cannot be dealt afresh as a full sequence can
(see _elastic). Instead each shard of the epoch's first run is carried on whole by one
shard of the new topology (old shard i by new shard i % count), from the item it had
reached, as that old shard: `current_shard()` reports the old index, count, rank and
worker, so the generator makes the same part. Each item comes tagged with the old shard
it belongs to, so the job's position stays counted per old shard through any number of
resizes within the epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from itertools import islice
from typing import Any

from loopline.streams._rotation import rotated
from loopline.streams.shard import Shard


def old_shards_rest(
    own_from: Callable[..., Iterator[Any]],
    shard: Shard,
    delivered: Sequence[int],
    old_workers: int,
    rotation: int,
    seekable: bool,
) -> Iterator[tuple[int, Any]]:
    """`(old shard, item)` for the rest of the old shards that `shard` carries on, each
    from its `delivered[old]`-th item (of its order rotated by `rotation`); `own_from(
    place, k)` gives the items of the old shard `place` from its k-th."""
    old_count = len(delivered)
    for old in range(shard.index, old_count, shard.count):
        place = Shard(
            index=old,
            count=old_count,
            rank=old // old_workers,
            world_size=old_count // old_workers,
            worker=old % old_workers,
            num_workers=old_workers,
            epoch=shard.epoch,
            seed=shard.seed,
        )
        from_k = partial(own_from, place)
        start = delivered[old]
        if rotation:
            items = rotated(from_k, rotation, start, seekable)
        else:
            items = from_k(start) if seekable else islice(from_k(0), start, None)
        for item in items:
            yield old, item
