"""Rotated epochs: what `even()` leaves out changes from epoch to epoch.

`even()` ends an epoch on every rank once any rank runs out, so the batches a rank holds
beyond the shortest rank's count are left out: the last ones of its shard. A generator
that yields its items in a fixed order would then lose the same items every epoch, and
they would never be trained on. So under `forever(even(...))` on several ranks each shard
moves the first `(epoch % 10) * batch_size` items of its own sequence to its end: what is
left out at the end moves by a batch each epoch, and over any ten epochs no item is left
out twice (while a shard holds more than ten batches; a shorter one rotates by the
remainder of its length, which still moves what is left out). The rotation is a function
of the epoch, the batch size and the shard's length, so a resumed run rotates the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from itertools import chain, islice
from typing import Any

CYCLE = 10  # epochs before the rotation comes back to 0


def rotation_of(epoch: int, batch_size: int | None) -> int:
    """How many items of its own sequence a shard moves to the end in `epoch`."""
    return (epoch % CYCLE) * (batch_size or 1)


def rotated(
    own_from: Callable[[int], Iterator[Any]], rotation: int, start: int, seekable: bool
) -> Iterator[Any]:
    """A shard's own items with the first `rotation` (modulo their count) moved to the end,
    less the first `start` of that order; `own_from(k)` gives its own items from the k-th
    (k > 0 only if `seekable`)."""
    if not seekable:
        own = own_from(0)
        held = list(islice(own, rotation))  # at most (CYCLE - 1) batches of items
        if len(held) < rotation:  # fewer items than that: all of them are in `held`
            return islice(iter(turned(held, rotation)), start, None)
        return islice(chain(own, held), start, None)
    return _seeking(own_from, rotation, start)


def turned(own: list[Any], rotation: int) -> list[Any]:
    """`own` with its first `rotation % len(own)` items moved to the end."""
    moved = rotation % len(own) if own else 0
    return own[moved:] + own[:moved]


def _seeking(own_from: Callable[[int], Iterator[Any]], rotation: int, start: int) -> Iterator[Any]:
    emitted = 0
    for item in own_from(rotation + start):
        emitted += 1
        yield item
    if emitted:  # the sequence is longer than `rotation`: the moved items come last
        yield from islice(own_from(0), rotation)
        return
    head = list(islice(own_from(0), rotation + 1))
    if len(head) <= rotation:  # a short sequence, all of it in `head`
        yield from turned(head, rotation)[start:]
        return
    # The resume fell among the moved items: the sequence's length says how far.
    length = sum(1 for _ in own_from(0))
    yield from islice(own_from(0), start - (length - rotation), rotation)


def dealt_rotated(items: Iterator[Any], rotation: int, shards: int) -> Iterator[Any]:
    """The full sequence `items` in the order that `shards` shards, each rotating its own
    items by `rotation`, deal it: its (i + shards * k)-th item is shard i's k-th. A resized
    job deals the rest of a rotated epoch from it, so the saved counts mean those items."""
    moved = rotation * shards  # the items the shards move to their ends, in order
    held = list(islice(items, moved))
    ahead = list(islice(items, shards))
    if len(ahead) < shards:  # so short that some shards hold no more than they move
        yield from _dealt_short(held + ahead, rotation, shards)
        return
    # Every shard has more than `rotation` items: the rest comes in order, then the moved
    # items, each where its shard's stride puts it.
    count = moved
    for item in chain(ahead, items):
        count += 1
        yield item
    by_shard = [deque(held[index::shards]) for index in range(shards)]
    for place in range(count - moved, count):
        yield by_shard[place % shards].popleft()


def _dealt_short(full: list[Any], rotation: int, shards: int) -> Iterator[Any]:
    dealt: list[Any] = [None] * len(full)
    for index in range(shards):
        dealt[index::shards] = turned(full[index::shards], rotation)
    yield from dealt
