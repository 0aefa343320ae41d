"""Length bucketing: batches of samples of similar length, so little goes to padding.

Random batches of variable-length sequences are mostly padding; sorted batches are not
random. Bucketing takes the middle road: a random chunk of samples (a bucket) is sorted
by length and cut into batches, and the batches are shuffled. `BucketSampler` does it
for a map-style dataset, as a batch sampler whose order is a pure function of
`(seed, epoch)`; `bucket(stream)` does it on a stream through a buffer, with a
`state_dict()` that holds the buffered batches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset, Sampler

from loopline._bucketing import (
    Progress,
    as_lengths,
    bucket_size_for,
    check_fits,
    check_int,
    check_optional_int,
    check_place,
    checked_length,
    cut_points,
    deal,
    fixed_batch_count,
    shuffled_batches,
)
from loopline._endless import announce_epoch
from loopline.generator import GeneratorDataset
from loopline.shard import distributed_rank_and_size

# Keys of Bucketer's state dict.
EPOCH = "epoch"
CONSUMED = "consumed"  # items taken from the source this epoch
BUFFERS = "buffers"  # buffers sorted so far this epoch; buffer k is shuffled by (seed, epoch, k)
PENDING = "pending"  # batches of the current buffer not yet yielded, as lists of items
SOURCE = "source"  # the source's own state_dict(), where it has one


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
        >>> from loopline.bucket import BucketSampler
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

    def _place(self) -> tuple[int, int]:
        if self._rank is not None and self._world_size is not None:
            return self._rank, self._world_size
        return distributed_rank_and_size()

    def __iter__(self) -> Iterator[list[int]]:
        rank, world_size = self._place()
        mine = deal(self.batches(self.epoch), rank, world_size, self.drop_last)
        return (list(batch) for batch in mine)  # copies: callers may change their batch

    def __len__(self) -> int:
        rank, world_size = self._place()
        if self.max_tokens is None:
            assert self.batch_size is not None
            # Fixed sizes: count without building the epoch.
            return fixed_batch_count(self.lengths.size, self.batch_size, world_size, self.drop_last)
        return len(deal(self.batches(self.epoch), rank, world_size, self.drop_last))


class Bucketer(IterableDataset):
    """Batches (lists) of items of similar length from a stream; build it with `bucket`.

    Attributes:
        source, length, batch_size, buffer_size, seed, drop_last: as given to `bucket`.
        epoch: the epoch the next `iter()` runs (see `set_epoch`).
    """

    def __init__(
        self,
        source: Iterable[Any],
        *,
        length: Callable[[Any], int],
        batch_size: int,
        buffer_size: int,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if not callable(length):
            raise TypeError(f"bucket: length must be a callable item -> int, got {length!r}")
        self.batch_size = check_int("bucket", "batch_size", batch_size, 1)
        self.buffer_size = check_int("bucket", "buffer_size", buffer_size, 1)
        if self.buffer_size % self.batch_size:
            raise ValueError(
                f"bucket: buffer_size must be a multiple of batch_size so that only the "
                f"epoch's last batch can be short, got buffer_size={buffer_size} and "
                f"batch_size={batch_size}"
            )
        self.seed = check_int("bucket", "seed", seed, 0)
        self.source, self.length, self.drop_last, self.epoch = source, length, drop_last, 0
        self._live: Progress | None = None  # the latest iteration's progress
        self._restored: dict[str, Any] | None = None  # loaded, for the next iter()

    @property
    def replayable(self) -> bool:
        """Whether iterating an epoch again gives the same batches (so forever() can
        resume a DataLoader over this stage by replaying it)."""
        return isinstance(self.source, GeneratorDataset) or getattr(
            self.source, "replayable", False
        )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch the next `iter()` runs, here and in the source."""
        check_int("bucket.set_epoch", "epoch", epoch, 0)
        if epoch != self.epoch:
            # A position saved or restored in another epoch says nothing about this one.
            self._live = self._restored = None
        self.epoch = epoch
        announce_epoch(self.source, epoch)

    def state_dict(self) -> dict[str, Any]:
        """The latest iteration's position: the epoch, the items consumed from the source,
        and the batches of the current buffer not yet yielded (lists of the items)."""
        if self._restored is not None:
            return dict(self._restored)
        progress = self._live or Progress(self.epoch)
        state: dict[str, Any] = {
            EPOCH: progress.epoch,
            CONSUMED: progress.consumed,
            BUFFERS: progress.buffers,
            PENDING: [list(batch) for batch in progress.pending],
        }
        if self._source_has_state():
            state[SOURCE] = self.source.state_dict()  # type: ignore[attr-defined]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at a saved position: the next `iter()` goes on from there."""
        missing = {EPOCH, CONSUMED, BUFFERS, PENDING} - set(state)
        if missing:
            raise KeyError(f"bucket.load_state_dict: state lacks keys {sorted(missing)}")
        if SOURCE in state and not self._source_has_state():
            raise ValueError(
                "bucket.load_state_dict: the state holds its source's state_dict() but "
                f"this source, {type(self.source).__name__}, has no load_state_dict()"
            )
        self.set_epoch(state[EPOCH])
        self._restored = dict(state)

    def _source_has_state(self) -> bool:
        source = self.source
        return callable(getattr(source, "state_dict", None)) and callable(
            getattr(source, "load_state_dict", None)
        )

    def __iter__(self) -> Iterator[list[Any]]:
        state, self._restored = self._restored, None
        if state is None:
            progress = Progress(self.epoch)
            items = self._items(self.epoch)
        else:
            pending = deque(list(batch) for batch in state[PENDING])
            progress = Progress(state[EPOCH], state[CONSUMED], state[BUFFERS], pending)
            if SOURCE in state:
                self.source.load_state_dict(state[SOURCE])  # type: ignore[attr-defined]
                items = iter(self.source)
            else:
                # The source gives the same items whenever it runs this epoch, so skipping
                # what was consumed lands where the saved iteration stood.
                items = islice(self._items(progress.epoch), progress.consumed, None)
        self._live = progress
        return self._run(progress, items)

    def _items(self, epoch: int) -> Iterator[Any]:
        if isinstance(self.source, GeneratorDataset):
            # By explicit epoch: DataLoader workers share the dataset's epoch but run
            # ahead of each other, so reading it back could race.
            return self.source.iter_epoch(epoch)
        return iter(self.source)

    def _run(self, progress: Progress, items: Iterator[Any]) -> Iterator[list[Any]]:
        while True:
            while progress.pending:
                yield progress.pending.popleft()
            # The buffer fills within one step, so between batches no item is half-taken
            # and the state needs only the pending batches.
            buffer = list(islice(items, self.buffer_size))
            if not buffer:
                break
            first = progress.consumed
            progress.consumed += len(buffer)
            if self.drop_last:
                # Only the last buffer can be short: drop its latest arrivals, which,
                # unlike the end of the sorted buffer, are not the longest items.
                buffer = buffer[: len(buffer) - len(buffer) % self.batch_size]
            progress.pending = deque(self._batches(buffer, first, progress))
            progress.buffers += 1
        if self._live is progress:
            # Done: the next iter() starts the epoch afresh, and the state says so.
            self._live = None

    def _batches(self, buffer: list[Any], first: int, progress: Progress) -> list[list[Any]]:
        epoch = progress.epoch
        lengths = [checked_length(self.length(x), first + i, epoch) for i, x in enumerate(buffer)]
        rng = np.random.default_rng([self.seed, epoch, progress.buffers])
        return shuffled_batches(buffer, lengths, self.batch_size, rng)


def bucket(
    iterable: Iterable[Any],
    *,
    length: Callable[[Any], int],
    batch_size: int,
    buffer_size: int,
    seed: int = 0,
    drop_last: bool = False,
) -> Bucketer:
    """Batch a stream into lists of items of similar length, in a shuffled order.

    The stage takes `buffer_size` items from the source, sorts them by `length(item)`,
    cuts them into batches of `batch_size` and yields those in an order drawn from
    `(seed, epoch, buffer number)`, then refills; the last, short buffer is flushed at
    the end. 128 batches' worth of buffer reaches 0.99 padding efficiency on lengths
    uniform in [1, 512]. Its `state_dict()` holds the batches still pending (the items
    themselves) and how many items it took; to resume, the source is replayed past those
    items, or restored through its own `load_state_dict` where it has one.

    Args:
        iterable: a re-iterable source (list, dataset, `from_generator`, ...); to resume
            without a state_dict of its own it must give the same items each epoch.
        length: item -> int >= 0, e.g. `len`.
        batch_size: items per batch.
        buffer_size: items sorted together, a multiple of batch_size.
        seed: the base seed of the batch order, an int >= 0.
        drop_last: drop the `n % batch_size` last items of an epoch instead of
            yielding a short batch.

    Returns:
        A `Bucketer`, an `IterableDataset` (use `DataLoader(stage, batch_size=None)`)
        with `set_epoch`, `state_dict()` and `load_state_dict()`.

    Example:
        >>> import torch
        >>> from loopline.bucket import bucket
        >>> items = [torch.zeros(n) for n in (5, 1, 4, 2, 8, 7)]
        >>> stage = bucket(items, length=len, batch_size=2, buffer_size=4, seed=3)
        >>> [[len(item) for item in batch] for batch in stage]
        [[4, 5], [1, 2], [7, 8]]
    """
    return Bucketer(
        iterable,
        length=length,
        batch_size=batch_size,
        buffer_size=buffer_size,
        seed=seed,
        drop_last=drop_last,
    )
