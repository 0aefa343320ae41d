"""`forever` over an iterable dataset: workers batch their shards epoch after epoch.

Each worker batches its own shard of every epoch in turn and tags each batch with (epoch,
worker, number) plus an end-of-epoch marker; the consumer restores the order a plain
DataLoader gives (round robin over workers: sorted by (number, worker)) and sees every
boundary. A position is how many batches each worker has delivered in the epoch.

Shards may differ in size, and the DataLoader asks its workers in turn whatever they hold,
so a worker with a shorter shard would run ahead into later epochs, one batch more each
epoch, and the consumer would have to keep those batches (memory and, for shared-memory
tensors, file descriptors without bound). So no worker starts an epoch before every worker
has finished the one before; meanwhile it answers with padding markers, which hold nothing
and are dropped, and which come only as fast as the loader asks. With `in_order=False`
batches are passed on as they come; the same rule keeps each epoch to its own batches.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterator
from itertools import count, islice
from typing import Any, NamedTuple, cast

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from loopline.streams._elastic import Layers
from loopline.streams._endless import EPOCH_END, in_order, rebuild, shut_down
from loopline.streams._rng import Reseeder, callers_rngs
from loopline.streams._rotation import rotation_of
from loopline.streams.generator import GeneratorDataset
from loopline.streams.protocols import announce_epoch, epoch_items, is_sharded


class Tagged(NamedTuple):
    """A batch with the place it came from (a NamedTuple so pin_memory recurses into it)."""

    epoch: int
    worker: int
    number: int  # the batch's number within its worker's epoch
    batch: Any
    end: bool
    pad: bool = False  # a marker a waiting worker sends instead of a batch (see above)
    size: int = 0  # the items in the batch, which a job's position counts
    origins: tuple[tuple[int, int], ...] = ()  # (old shard, items) after a sharded resize


def keep(item: Any) -> Any:
    """Identity collate: batches are already collated inside the workers."""
    return item


def batched(items: Iterator[Any], size: int | None, drop_last: bool) -> Iterator[list[Any]]:
    """Lists of `size` consecutive items (single items when size is None)."""
    if size is None:
        for item in items:
            yield [item]
        return
    while chunk := list(islice(items, size)):
        if len(chunk) < size and drop_last:
            return
        yield chunk


class EndlessBatches(IterableDataset):
    """Runs inside each worker: batches its shard, epoch after epoch, tagged."""

    def __init__(
        self,
        dataset: IterableDataset,
        batch_size: int | None,
        drop_last: bool,
        collate_fn: Callable[[Any], Any],
        start_epoch: int,
        skips: list[int],
        stop_epoch: int | None,
        workers: int,
        layers: Layers = (),
        reseeder: Reseeder | None = None,
        rotate: bool = False,
        rotation: int = 0,
        old_workers: int = 1,
    ):
        self.dataset = dataset
        self.old_workers = old_workers  # per rank, in the epoch's first run (_resharded)
        self.rotate = rotate  # rotate each epoch's shards, for even() (see _rotation)
        self.rotation = rotation  # the epoch's first run's, in a resized start epoch
        self.reseeder = reseeder  # seeds the global RNGs before each item (see _rng)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.collate_fn = collate_fn
        self.start_epoch = start_epoch
        self.skips = skips
        self.stop_epoch = stop_epoch
        self.layers = layers  # after a resize: what the start epoch's earlier runs delivered
        # finished[w]: the last epoch worker w has batched to its end, in shared memory so
        # that every worker sees every other's.
        self.finished = torch.full((workers,), start_epoch - 1, dtype=torch.int64)
        self.finished.share_memory_()

    def __iter__(self) -> Iterator[Tagged]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        epochs = (
            count(self.start_epoch)
            if self.stop_epoch is None
            else range(self.start_epoch, self.stop_epoch)
        )
        for epoch in epochs:
            while int(self.finished.min()) < epoch - 1:  # another worker is still behind
                yield Tagged(epoch, worker, -1, None, False, True)
            skip = self.skips[worker] if epoch == self.start_epoch else 0
            items, drawn = self._items(epoch, skip)
            # A sharded generator resized: (old shard, item) pairs (see _resharded).
            paired = epoch == self.start_epoch and bool(self.layers) and is_sharded(self.dataset)
            chunks = batched(items, self.batch_size, self.drop_last)
            index = skip
            # Skipped batches are drawn but never collated: resuming replays the generator.
            for chunk in islice(chunks, skip - drawn, None):
                origins: tuple[tuple[int, int], ...] = ()
                if paired:
                    origins = tuple(Counter(old for old, _ in chunk).items())
                    chunk = [item for _, item in chunk]
                batch = self.collate_fn(chunk if self.batch_size is not None else chunk[0])
                yield Tagged(epoch, worker, index, batch, False, size=len(chunk), origins=origins)
                index += 1
            yield Tagged(epoch, worker, index, None, True)
            # Only once its end marker is on its way may the others start the next epoch,
            # so that no batch of it can arrive before that marker, out of order either.
            self.finished[worker] = epoch

    def _items(self, epoch: int, skip: int) -> tuple[Iterator[Any], int]:
        """This worker's items of `epoch`, and how many of the `skip` batches to skip at
        its start they already leave out."""
        dataset = self.dataset
        if not isinstance(dataset, GeneratorDataset):
            return epoch_items(dataset, epoch), 0
        reseed = self.reseeder
        if epoch == self.start_epoch and self.layers:
            # The rest of the epoch, dealt afresh to this topology's shards.
            layers, rotation, old_workers = self.layers, self.rotation, self.old_workers
            items = dataset.iter_epoch(
                epoch, layers=layers, reseed=reseed, rotation=rotation, old_workers=old_workers
            )
            return items, 0
        rotation = rotation_of(epoch, self.batch_size) if self.rotate else 0
        if skip and dataset.seekable:
            # The generator starts after the items of the skipped batches itself.
            start = skip * (self.batch_size or 1)
            return dataset.iter_epoch(epoch, start=start, reseed=reseed, rotation=rotation), skip
        return dataset.iter_epoch(epoch, reseed=reseed, rotation=rotation), 0


class IterableOrder:
    """Ordered batches of an endless iterable-style loader, split into epochs."""

    def __init__(
        self,
        loader: DataLoader,
        start_epoch: int,
        position: list[int] | None,
        stop: int | None,
        *,
        consumed: list[int] | None = None,
        layers: Layers = (),
        rngs: tuple[str, ...] = (),
        rotate: bool = False,
        rotation: int = 0,
        old_workers: int = 1,
    ):
        self.workers = max(1, loader.num_workers)
        self.next_index = list(position) if position is not None else [0] * self.workers
        self.items = list(consumed) if consumed is not None else [0] * self.workers
        self.start_epoch = start_epoch
        # After a sharded generator's resize, the start epoch counts items per old shard.
        self.by_old = [0] * len(layers[0]) if layers and is_sharded(loader.dataset) else []
        self.ended = [False] * self.workers
        self.epoch = start_epoch
        self._loader = loader
        self._stop = stop
        self._waiting: list[deque[Tagged]] = [deque() for _ in range(self.workers)]
        self._in_order = in_order(loader)
        endless = EndlessBatches(
            cast(IterableDataset, loader.dataset),
            loader.batch_size,
            loader.drop_last,
            loader.collate_fn,
            start_epoch,
            list(self.next_index),
            stop,
            self.workers,
            layers,
            Reseeder(rngs, getattr(loader.dataset, "seed", 0)) if rngs else None,
            rotate,
            rotation,
            old_workers,
        )
        announce_epoch(loader, start_epoch)
        # Without workers, items are made here: keep the caller's RNGs as they were.
        self._callers = rngs if loader.num_workers == 0 else ()
        with callers_rngs(self._callers):  # iter() draws a base seed from torch's RNG
            self._tagged = iter(rebuild(loader, dataset=endless, batch_size=None, collate_fn=keep))

    def next_batch(self) -> Any:
        while True:
            active = [w for w in range(self.workers) if not self.ended[w]]
            if not active:
                self.epoch += 1
                self.next_index = [0] * self.workers
                self.items = [0] * self.workers
                self.ended = [False] * self.workers
                if self._stop is None or self.epoch < self._stop:
                    announce_epoch(self._loader, self.epoch)
                return EPOCH_END
            # A plain DataLoader serves workers round robin: batch j of every worker
            # before batch j+1 of any; out of order, batches come as they are done.
            item = self._take(min(active, key=lambda w: (self.next_index[w], w)))
            worker = item.worker
            if item.end:
                self.ended[worker] = True
                continue
            self.next_index[worker] += 1
            self.items[worker] += item.size
            for old, size in item.origins:
                self.by_old[old] += size
            return item.batch

    def _take(self, worker: int) -> Tagged:
        """Worker `worker`'s next batch (in order), or whichever comes first (out of order)."""
        waiting = self._waiting[worker]
        while not waiting:
            with callers_rngs(self._callers):
                item = next(self._tagged)
            if item.pad:
                continue
            self._waiting[item.worker].append(item)
            if not self._in_order:
                worker, waiting = item.worker, self._waiting[item.worker]
        item = waiting.popleft()
        if (item.epoch, item.number) != (self.epoch, self.next_index[worker]):
            raise RuntimeError(
                f"forever: internal order error, expected epoch {self.epoch} batch "
                f"{self.next_index[worker]} of worker {worker}, got epoch {item.epoch} "
                f"batch {item.number}"
            )
        return item

    def position_state(self) -> Any:
        return list(self.next_index)

    def consumed_state(self) -> list[int]:
        """The items each worker (shard) delivered in the current epoch."""
        if self.by_old and self.epoch == self.start_epoch:
            return list(self.by_old)  # the job's position, counted per old shard
        return list(self.items)

    def close(self) -> None:
        shut_down(self._tagged)
