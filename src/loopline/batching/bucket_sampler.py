"""A batch sampler of similar-length samples, in an order fixed by `(seed, epoch)`.

Random batches of variable-length sequences are mostly padding; sorted batches are not
random. Bucketing takes the middle road: a random chunk of samples (a bucket) is sorted
by length and cut into batches, and the batches are shuffled. Because the whole epoch is
a pure function of `(seed, epoch)`, `forever` resumes it by replaying indices only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from loopline._checks import check_int, check_optional_int, check_place
from loopline.batching._bucketing import (
    as_lengths,
    bucket_size_for,
    check_fits,
    cut_points,
    deal,
    fixed_batch_count,
)
from loopline.streams.shard import place_of


class BucketSampler(Sampler[list[int]]):
    """Batches of indices of similar length, in an order fixed by `(seed, epoch)`.

    Pass it as `DataLoader(dataset, batch_sampler=...)`. Each epoch the indices are
    permuted, cut into buckets of `bucket_size`, every bucket is sorted by length and cut
    into batches, and all the batches are shuffled. Rank r takes `batches[r::world_size]`;
    so that all ranks get as many batches, the list is first padded by repeating batches
    from its start, as DistributedSampler does (with drop_last: cut to a multiple).

    Args:
        lengths: every sample's length: a list, numpy array or tensor of ints >= 0.
        batch_size: samples per batch; with `max_tokens`, the most samples per batch,
            or None for no limit but the token budget.
        shuffle: permute indices and batches; else buckets are runs of consecutive
            indices and batches come bucket by bucket, shortest first.
        seed: the base seed, an int >= 0; every rank must use the same one.
        drop_last: drop the `len(lengths) % batch_size` samples that would make a short
            batch (random ones; fixed batch size only), and drop batches rather than
            repeat them to even out the ranks.
        max_tokens: a budget per batch: `len(batch) * max_length_in_batch <= max_tokens`.
        bucket_size: samples per bucket, default 128 batches' worth; with a fixed batch
            size a multiple of batch_size, so only an epoch's last batch can be short.
        rank, world_size: this rank's place; default from `torch.distributed`.

    Raises:
        ValueError: a bad option, a negative length, or a sample longer than max_tokens.

    Example:
        >>> from loopline.batching.bucket_sampler import BucketSampler
        >>> lengths = [5, 1, 4, 2, 8, 7]
        >>> sampler = BucketSampler(lengths, batch_size=2, seed=3)
        >>> [[lengths[i] for i in batch] for batch in sampler]
        [[7, 8], [4, 5], [1, 2]]
        >>> len(sampler)
        3
    """

    # forever() may checkpoint by (epoch, position) and replay the batch stream.
    replayable = True

    def __init__(
        self,
        lengths: Any,
        batch_size: int | None,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        max_tokens: int | None = None,
        bucket_size: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        who = "BucketSampler"
        self.lengths = as_lengths(lengths, who)
        if batch_size is None and max_tokens is None:
            raise ValueError(f"{who}: batch_size may be None only with max_tokens, got both None")
        self.batch_size = check_optional_int(who, "batch_size", batch_size, 1)
        self.max_tokens = check_optional_int(who, "max_tokens", max_tokens, 1)
        if self.max_tokens is not None:
            check_fits(self.lengths, self.max_tokens, who)
        self.bucket_size = bucket_size_for(
            who, bucket_size, self.lengths, self.batch_size, self.max_tokens
        )
        self.seed = check_int(who, "seed", seed, 0)
        check_place(who, rank, world_size)
        self.shuffle, self.drop_last, self.epoch = shuffle, drop_last, 0
        self._rank, self._world_size = rank, world_size
        self._cached: tuple[int, list[list[int]]] | None = None  # (epoch, batches)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next `iter()` yields."""
        self.epoch = epoch

    def batches(self, epoch: int) -> list[list[int]]:
        """All ranks' batches of `epoch` in order, before they are dealt to ranks (the
        sampler keeps this list for `len()`: copy it before changing it)."""
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1]
        count = self.lengths.size
        rng = np.random.default_rng([self.seed, epoch])
        indices = rng.permutation(count) if self.shuffle else np.arange(count)
        if self.drop_last and self.max_tokens is None:
            assert self.batch_size is not None
            # The permutation's tail: random samples, not the longest of some bucket.
            indices = indices[: count - count % self.batch_size]
        batches: list[list[int]] = []
        for start in range(0, indices.size, self.bucket_size):
            chunk = indices[start : start + self.bucket_size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            ends = cut_points(self.lengths[chunk].tolist(), self.batch_size, self.max_tokens)
            batches += [part.tolist() for part in np.split(chunk, ends[:-1])]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        self._cached = (epoch, batches)
        return batches

    def place(self) -> tuple[int, int]:
        """The `(rank, world_size)` this sampler deals for: as given, else torch.distributed's."""
        return place_of(self._rank, self._world_size)

    def __iter__(self) -> Iterator[list[int]]:
        rank, world_size = self.place()
        mine = deal(self.batches(self.epoch), rank, world_size, self.drop_last)
        return (list(batch) for batch in mine)  # copies: callers may change their batch

    def __len__(self) -> int:
        rank, world_size = self.place()
        if self.max_tokens is None:
            assert self.batch_size is not None
            # Fixed sizes: count without building the epoch.
            return fixed_batch_count(self.lengths.size, self.batch_size, world_size, self.drop_last)
        return len(deal(self.batches(self.epoch), rank, world_size, self.drop_last))
