"""The arithmetic of length bucketing, shared by `BucketSampler` and `bucket`.

A bucket is a chunk of samples in random order. Sorting it by length and cutting it into
batches gives batches of similar length, so little padding; shuffling the batches
afterwards keeps the order of training random. These helpers do the validating, the
cutting, the dealing of batches to ranks and the stream stage's bookkeeping;
`bucket.py` puts them together.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from loopline._checks import check_int

# A bucket holds this many batches' worth of samples unless told otherwise. On lengths
# uniform in [1, 512] with batch size 32, padding efficiency is 0.989 at 100 batches and
# 0.992 at 128 (fully sorted: 0.998); bigger buckets make batch contents less random.
BATCHES_PER_BUCKET = 128


def as_lengths(lengths: Any, who: str) -> np.ndarray:
    """`lengths` (a list, numpy array or tensor of ints >= 0) as a 1-D int64 array."""
    if isinstance(lengths, torch.Tensor):
        lengths = lengths.detach().cpu().numpy()
    array = np.asarray(lengths)
    if array.ndim != 1:
        raise ValueError(f"{who}: lengths must be 1-D, got shape {tuple(array.shape)}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{who}: lengths must be integers, got dtype {array.dtype}")
    array = array.astype(np.int64)
    negative = np.flatnonzero(array < 0)
    if negative.size:
        index = int(negative[0])
        raise ValueError(
            f"{who}: lengths must be >= 0, got lengths[{index}] = {array[index]} "
            f"({negative.size} negative in all)"
        )
    return array


def check_fits(lengths: np.ndarray, max_tokens: int, who: str) -> None:
    """Raise if some sample alone is longer than the `max_tokens` budget of a batch."""
    too_long = np.flatnonzero(lengths > max_tokens)
    if too_long.size:
        index = int(too_long[0])
        raise ValueError(
            f"{who}: sample {index} has length {lengths[index]} > max_tokens={max_tokens}, "
            f"so no batch can hold it ({too_long.size} such samples in all); raise "
            "max_tokens or truncate those samples"
        )


def cut_points(
    sorted_lengths: Sequence[int], batch_size: int | None, max_tokens: int | None
) -> list[int]:
    """The end positions of the batches over a bucket sorted by ascending length.

    Fixed size: every `batch_size` samples. With `max_tokens`: greedily as many samples
    as keep `count * longest <= max_tokens` (and `count <= batch_size` unless None).
    """
    size = len(sorted_lengths)
    if max_tokens is None:
        assert batch_size is not None
        return [*range(batch_size, size, batch_size), size] if size else []
    ends: list[int] = []
    start = 0
    for end, length in enumerate(sorted_lengths):
        # Lengths ascend, so the sample being added is the longest in its batch.
        full = batch_size is not None and end - start == batch_size
        if full or (end + 1 - start) * length > max_tokens:
            ends.append(end)
            start = end
    return [*ends, size] if size else []


def deal(batches: list[Any], rank: int, world_size: int, drop_last: bool) -> list[Any]:
    """Rank `rank`'s share of `batches`: the strided part, after evening out the count.

    drop_last drops the last `len % world_size` batches; otherwise the list is padded, as
    DistributedSampler pads indices, by repeating batches from its start.
    """
    if drop_last:
        batches = batches[: len(batches) - len(batches) % world_size]
    elif batches and len(batches) % world_size:
        missing = world_size - len(batches) % world_size
        # Cycle: an epoch may have fewer batches than there are ranks.
        batches = batches + [batches[i % len(batches)] for i in range(missing)]
    return batches[rank::world_size]


def bucket_size_for(
    who: str, bucket_size: Any, lengths: np.ndarray, batch_size: int | None, max_tokens: int | None
) -> int:
    """A checked `bucket_size`, or by default `BATCHES_PER_BUCKET` batches' worth."""
    if bucket_size is not None:
        size = check_int(who, "bucket_size", bucket_size, 1)
        if max_tokens is None and batch_size and size % batch_size:
            raise ValueError(
                f"{who}: bucket_size must be a multiple of batch_size so that only the "
                f"epoch's last batch can be short, got bucket_size={size} and "
                f"batch_size={batch_size}"
            )
        return size
    per_batch = batch_size or 1
    if max_tokens is not None and lengths.size:
        # About how many samples of mean length fit the budget.
        fit = max(1, max_tokens // max(1, round(float(lengths.mean()))))
        per_batch = min(fit, batch_size or fit)
    return BATCHES_PER_BUCKET * per_batch


def fixed_batch_count(count: int, batch_size: int, world_size: int, drop_last: bool) -> int:
    """Batches per rank for `count` samples in batches of `batch_size`, as `deal` gives."""
    if drop_last:
        return count // batch_size // world_size
    total = -(-count // batch_size)
    return -(-total // world_size)


@dataclass
class Progress:
    """How far one iteration of a `Bucketer` has got (see the state dict keys)."""

    epoch: int
    consumed: int = 0
    buffers: int = 0
    pending: deque[list[Any]] = field(default_factory=deque)


def checked_length(value: Any, position: int, epoch: int) -> int:
    """`value`, the `length(item)` of a stream's item, if it is an int >= 0."""
    try:
        length = operator.index(value)
    except TypeError:
        raise TypeError(
            f"bucket: length(item) must return an int, got {type(value).__name__} "
            f"{value!r} for item {position} of epoch {epoch}"
        ) from None
    if length < 0:
        raise ValueError(
            f"bucket: length(item) must be >= 0, got {length} for item {position} of epoch {epoch}"
        )
    return length


def shuffled_batches(
    items: list[Any], lengths: list[int], batch_size: int, rng: np.random.Generator
) -> list[list[Any]]:
    """`items` sorted by length, cut into batches, in an order drawn from `rng`."""
    order = sorted(range(len(items)), key=lengths.__getitem__)  # stable: ties keep arrival
    size = batch_size
    batches = [[items[i] for i in order[a : a + size]] for a in range(0, len(order), size)]
    return [batches[k] for k in rng.permutation(len(batches))]
