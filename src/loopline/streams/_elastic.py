"""What an epoch has left after a resize: the samples no earlier topology delivered.

A job's position in an epoch is counted in samples, per shard (a rank for map-style
streams, a (rank, worker) pair for generators): shard `i` of `count` deals the `i`-th,
`(i + count)`-th, ... item of the epoch's sequence, so "shard i delivered n_i" marks a
fixed set of positions. A resume under another topology cannot continue those strides,
so it deals what is left afresh: the sequence less the delivered positions, dealt in
the new strides. Each such resume adds one layer (the counts per shard of the run before
it), and a layer's positions are counted in what the layers before it left, so any
number of resizes within one epoch still delivers every sample exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

Layers = Sequence[Sequence[int]]  # per layer, the samples each shard delivered


def remaining_positions(length: int, layers: Layers) -> np.ndarray:
    """The positions of an epoch of `length` samples that no layer delivered, in order."""
    left = np.arange(length)
    for counts in layers:
        shards = len(counts)
        place = np.arange(len(left))
        delivered = place // shards < np.asarray(counts, dtype=np.int64)[place % shards]
        left = left[~delivered]
    return left


def first_unconsumed(layers: Layers) -> int:
    """How many items at the start of the sequence the first layer delivered, all of them:
    a seekable generator may begin there."""
    if not layers:
        return 0
    counts = layers[0]
    return min(index + len(counts) * delivered for index, delivered in enumerate(counts))


def undelivered(items: Iterator[Any], layers: Layers, start: int = 0) -> Iterator[Any]:
    """The items that no layer delivered, from `items`: the sequence from position `start`
    on (positions before `start` must all have been delivered by the first layer)."""
    wanted = keeper(layers, start, 0, 1)
    return (item for place, item in enumerate(items, start) if wanted(place))


def keeper(layers: Layers, start: int, index: int, count: int) -> Callable[[int], bool]:
    """A test to ask of positions `start`, `start + 1`, ... of the sequence in turn: whether
    the item there is one that no layer delivered and that falls to shard `index` of
    `count` when what is left is dealt afresh. The same items as `undelivered` and a
    stride give, known before each item is made (so only those need seeding)."""
    places = [start] + [0] * (len(layers) - 1)
    shards = [len(counts) for counts in layers]
    left = 0  # items found undelivered so far

    def wanted(_: int) -> bool:
        nonlocal left
        for layer, counts in enumerate(layers):
            place = places[layer]
            places[layer] += 1
            if place // shards[layer] < counts[place % shards[layer]]:
                return False  # delivered by this layer
        left += 1
        return (left - 1) % count == index

    return wanted
