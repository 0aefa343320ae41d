"""Length bucketing on a stream: batches of items of similar length, in shuffled order.

`bucket(stream)` fills a buffer, sorts it by length, cuts it into batches and yields them
in an order drawn from `(seed, epoch, buffer number)` (the map-style twin is
`BucketSampler`). Its `state_dict()` holds the batches still pending and how many items
it took, so a restored stage replays its source past them and loses nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset

from loopline._checks import check_int
from loopline._pickling import check_picklable
from loopline.batching._bucketing import Progress, checked_length, shuffled_batches
from loopline.streams.protocols import (
    announce_epoch,
    epoch_items,
    is_checkpointable,
    is_replayable,
)

# bucket's default buffer, in batches: enough for 0.99 padding efficiency on lengths
# uniform in [1, 512] (benchmarks/batching.py).
BUFFER_BATCHES = 128

# Keys of Bucketer's state dict.
EPOCH = "epoch"
CONSUMED = "consumed"  # items taken from the source this epoch
BUFFERS = "buffers"  # buffers sorted so far this epoch; buffer k is shuffled by (seed, epoch, k)
PENDING = "pending"  # batches of the current buffer not yet yielded, as lists of items
SOURCE = "source"  # the source's own state_dict(), where it has one


class Bucketer(IterableDataset):
    """Batches (lists) of items of similar length from a stream; build it with `bucket`.

    Attributes:
        source, length, batch_size, buffer_size, seed, drop_last: as given to `bucket`.
        epoch: the epoch the next `iter()` runs (see `set_epoch`).

    Example:
        >>> import loopline
        >>> words = ["a", "bbb", "cc", "dddd", "e", "ff"]
        >>> stage = loopline.bucket(words, length=len, batch_size=2, buffer_size=6, seed=0)
        >>> [sorted(map(len, batch)) for batch in stage]  # similar lengths together
        [[3, 4], [1, 1], [2, 2]]
        >>> stage.set_epoch(2)  # another epoch, another order of the batches
        >>> [sorted(map(len, batch)) for batch in stage]
        [[3, 4], [2, 2], [1, 1]]
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

    def __getstate__(self) -> dict[str, Any]:
        # Pickling happens when workers are spawned: say what to pass instead of a lambda.
        check_picklable("bucket", self.length)
        return self.__dict__.copy()

    @property
    def replayable(self) -> bool:
        """Whether iterating an epoch again gives the same batches (so forever() can
        resume a DataLoader over this stage by replaying it)."""
        return is_replayable(self.source)

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
        if is_checkpointable(self.source):
            state[SOURCE] = self.source.state_dict()  # type: ignore[attr-defined]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at a saved position: the next `iter()` goes on from there."""
        missing = {EPOCH, CONSUMED, BUFFERS, PENDING} - set(state)
        if missing:
            raise KeyError(f"bucket.load_state_dict: state lacks keys {sorted(missing)}")
        if SOURCE in state and not is_checkpointable(self.source):
            raise ValueError(
                "bucket.load_state_dict: the state holds its source's state_dict() but "
                f"this source, {type(self.source).__name__}, has no load_state_dict()"
            )
        self.set_epoch(state[EPOCH])
        self._restored = dict(state)

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
        return epoch_items(self.source, epoch)

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
    buffer_size: int | None = None,
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
        buffer_size: items sorted together, a multiple of batch_size; by default
            `BUFFER_BATCHES * batch_size` (128 batches' worth).
        seed: the base seed of the batch order, an int >= 0.
        drop_last: drop the `n % batch_size` last items of an epoch instead of
            yielding a short batch.

    Returns:
        A `Bucketer`, an `IterableDataset` (use `DataLoader(stage, batch_size=None)`)
        with `set_epoch`, `state_dict()` and `load_state_dict()`.

    Example:
        >>> import torch
        >>> from loopline.batching.bucket import bucket
        >>> items = [torch.zeros(n) for n in (5, 1, 4, 2, 8, 7)]
        >>> stage = bucket(items, length=len, batch_size=2, buffer_size=4, seed=3)
        >>> [[len(item) for item in batch] for batch in stage]
        [[4, 5], [1, 2], [7, 8]]
    """
    batch_size = check_int("bucket", "batch_size", batch_size, 1)
    return Bucketer(
        iterable,
        length=length,
        batch_size=batch_size,
        buffer_size=BUFFER_BATCHES * batch_size if buffer_size is None else buffer_size,
        seed=seed,
        drop_last=drop_last,
    )
