"""The machinery behind `forever`: one DataLoader iteration that spans many epochs.

A DataLoader stalls at every epoch boundary because its workers run dry: the sampler
ends, the prefetch queue drains, and the next epoch starts from an empty pipeline. To
keep workers busy across the boundary, `forever` rebuilds the loader once with the same
settings but an endless source, and finds the boundaries itself:

- map-style datasets: an endless batch sampler chains the epochs of the original
  sampler and records how many batches each epoch had, so the consumer knows where the
  boundary falls in the ordered output;
- iterable datasets: each worker batches its own shard epoch after epoch and tags every
  batch with (epoch, worker, index) plus an end-of-epoch marker; the consumer restores
  the order a plain DataLoader would give (round robin over workers, i.e. sorted by
  (index, worker)).

Both remember positions as plain integers, which is what makes exact resume possible.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import count, islice
from typing import Any, NamedTuple, cast

from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from torch.utils.data.sampler import BatchSampler, SequentialSampler

EPOCH_END = object()  # returned by an order when the current epoch has no batch left


class EmptyEpoch(RuntimeError):
    """A loader produced no batch in an epoch, which would make `forever` spin.

    Example:
        >>> import loopline
        >>> from torch.utils.data import DataLoader
        >>> try:
        ...     next(loopline.forever(DataLoader([])))
        ... except loopline.EmptyEpoch as error:
        ...     print(type(error).__name__)
        EmptyEpoch
    """


def announce_epoch(source: Any, epoch: int) -> None:
    """Call `set_epoch(epoch)` on the loader and its sampler, batch sampler and dataset."""
    seen: set[int] = set()
    for part in (
        source,
        getattr(source, "sampler", None),
        getattr(source, "batch_sampler", None),
        getattr(source, "dataset", None),
    ):
        if part is not None and id(part) not in seen and callable(getattr(part, "set_epoch", None)):
            seen.add(id(part))
            part.set_epoch(epoch)


def index_sampler(loader: DataLoader) -> Any:
    """The sampler a DataLoader draws its batches' indices from."""
    # Not `batch_sampler or sampler`: an empty batch sampler is falsy.
    return loader.batch_sampler if loader.batch_sampler is not None else loader.sampler


def shut_down(batches: Any) -> None:
    """Stop a DataLoader iterator's worker processes now rather than at garbage collection."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if callable(shutdown):
        shutdown()


def is_replayable(sampler: Any) -> bool:
    """Whether a sampler's order is a pure function of its epoch."""
    if isinstance(sampler, BatchSampler):
        return is_replayable(sampler.sampler)
    if isinstance(sampler, SequentialSampler) or getattr(sampler, "replayable", False):
        return True
    try:
        from torch.utils.data.distributed import DistributedSampler
    except ImportError:  # pragma: no cover - torch built without distributed
        return False
    return isinstance(sampler, DistributedSampler)


def rebuild(loader: DataLoader, **changes: Any) -> DataLoader:
    """A new DataLoader with `loader`'s settings, some replaced by `changes`."""
    settings: dict[str, Any] = dict(
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator,
    )
    if loader.num_workers > 0:
        settings["prefetch_factor"] = loader.prefetch_factor
    if loader.pin_memory_device:
        settings["pin_memory_device"] = loader.pin_memory_device
    if hasattr(loader, "in_order"):
        settings["in_order"] = loader.in_order
    settings.update(changes)
    dataset = settings.pop("dataset", loader.dataset)
    return DataLoader(dataset, **settings)


# ---------------------------------------------------------------- map-style datasets


class EndlessSampler:
    """Chains the epochs of a (batch) sampler, noting the epoch of every batch it hands out."""

    def __init__(self, loader: DataLoader, start_epoch: int, skip: int, stop_epoch: int | None):
        self.loader = loader
        self.start_epoch = start_epoch
        self.skip = skip
        self.stop_epoch = stop_epoch
        # The DataLoader returns batches in the order it drew their indices (in_order), so
        # the consumer pops one epoch number per batch it receives.
        self.epochs_handed_out: deque[int] = deque()

    def __iter__(self) -> Iterator[Any]:
        inner = index_sampler(self.loader)
        epochs = (
            count(self.start_epoch)
            if self.stop_epoch is None
            else range(self.start_epoch, self.stop_epoch)
        )
        for epoch in epochs:
            announce_epoch(self.loader, epoch)
            skip = self.skip if epoch == self.start_epoch else 0
            size = skip
            for indices in islice(inner, skip, None):
                size += 1
                self.epochs_handed_out.append(epoch)
                yield indices
            if size == 0:
                raise EmptyEpoch(
                    f"forever: epoch {epoch} of the DataLoader produced no batch (its "
                    f"sampler {type(inner).__name__} is empty{_drop_last_hint(self.loader)}); "
                    "iterating it forever would spin without end"
                )


def _drop_last_hint(loader: DataLoader) -> str:
    return ", or drop_last=True dropped its only partial batch" if loader.drop_last else ""


class MapOrder:
    """Ordered batches of an endless map-style loader, split into epochs."""

    kind = "map"

    def __init__(self, loader: DataLoader, start_epoch: int, position: int, stop: int | None):
        self.sampler = EndlessSampler(loader, start_epoch, position, stop)
        if loader.batch_sampler is not None:
            endless = rebuild(loader, batch_sampler=self.sampler, collate_fn=loader.collate_fn)
        else:
            endless = rebuild(
                loader, batch_size=None, sampler=self.sampler, collate_fn=loader.collate_fn
            )
        self.epoch = start_epoch
        self.position = position
        self._batches = iter(endless)
        self._held: tuple[int, Any] | None = None  # a next-epoch batch, kept for later

    def next_batch(self) -> Any:
        if self._held is None:
            batch = next(self._batches, EPOCH_END)
            if batch is EPOCH_END:  # epochs ran out (stop_epoch)
                self.epoch, self.position = self.epoch + 1, 0
                return EPOCH_END
            self._held = (self.sampler.epochs_handed_out.popleft(), batch)
        epoch, batch = self._held
        if epoch != self.epoch:
            self.epoch, self.position = epoch, 0
            return EPOCH_END
        self._held = None
        self.position += 1
        return batch

    def position_state(self) -> Any:
        return self.position

    def close(self) -> None:
        shut_down(self._batches)


# ----------------------------------------------------------------- iterable datasets


class Tagged(NamedTuple):
    """A batch with the place it came from (a NamedTuple so pin_memory recurses into it)."""

    epoch: int
    worker: int
    number: int  # the batch's number within its worker's epoch
    batch: Any
    end: bool


def keep(item: Any) -> Any:
    """Identity collate: batches are already collated inside the workers."""
    return item


def epoch_items(dataset: Iterable[Any], epoch: int) -> Iterator[Any]:
    """The items of `epoch` from this worker's copy of `dataset`."""
    iter_epoch = getattr(dataset, "iter_epoch", None)
    if callable(iter_epoch):
        # Explicit epoch: workers run ahead of each other, so a shared epoch would race.
        return iter_epoch(epoch)
    if callable(getattr(dataset, "set_epoch", None)):
        dataset.set_epoch(epoch)  # type: ignore[attr-defined]
    return iter(dataset)


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
    ):
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.collate_fn = collate_fn
        self.start_epoch = start_epoch
        self.skips = skips
        self.stop_epoch = stop_epoch

    def __iter__(self) -> Iterator[Tagged]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        epochs = (
            count(self.start_epoch)
            if self.stop_epoch is None
            else range(self.start_epoch, self.stop_epoch)
        )
        for epoch in epochs:
            skip = self.skips[worker] if epoch == self.start_epoch else 0
            chunks = batched(epoch_items(self.dataset, epoch), self.batch_size, self.drop_last)
            index = skip
            # Skipped batches are drawn but never collated: resuming replays the generator.
            for chunk in islice(chunks, skip, None):
                batch = self.collate_fn(chunk if self.batch_size is not None else chunk[0])
                yield Tagged(epoch, worker, index, batch, False)
                index += 1
            yield Tagged(epoch, worker, index, None, True)


class IterableOrder:
    """Ordered batches of an endless iterable-style loader, split into epochs."""

    kind = "iterable"

    def __init__(
        self, loader: DataLoader, start_epoch: int, position: list[int] | None, stop: int | None
    ):
        self.workers = max(1, loader.num_workers)
        self.next_index = list(position) if position is not None else [0] * self.workers
        self.ended = [False] * self.workers
        self.epoch = start_epoch
        self._loader = loader
        self._stop = stop
        self._waiting: list[deque[Tagged]] = [deque() for _ in range(self.workers)]
        endless = EndlessBatches(
            cast(IterableDataset, loader.dataset),
            loader.batch_size,
            loader.drop_last,
            loader.collate_fn,
            start_epoch,
            list(self.next_index),
            stop,
        )
        announce_epoch(loader, start_epoch)
        self._tagged = iter(rebuild(loader, dataset=endless, batch_size=None, collate_fn=keep))

    def next_batch(self) -> Any:
        while True:
            active = [w for w in range(self.workers) if not self.ended[w]]
            if not active:
                self.epoch += 1
                self.next_index = [0] * self.workers
                self.ended = [False] * self.workers
                if self._stop is None or self.epoch < self._stop:
                    announce_epoch(self._loader, self.epoch)
                return EPOCH_END
            # A plain DataLoader serves workers round robin: batch j of every worker
            # before batch j+1 of any.
            worker = min(active, key=lambda w: (self.next_index[w], w))
            item = self._take(worker)
            if item.end:
                self.ended[worker] = True
                continue
            self.next_index[worker] += 1
            return item.batch

    def _take(self, worker: int) -> Tagged:
        waiting = self._waiting[worker]
        while not waiting:
            item = next(self._tagged)
            self._waiting[item.worker].append(item)
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

    def close(self) -> None:
        shut_down(self._tagged)


# ---------------------------------------------------------- any other iterable


class GenericOrder:
    """Re-iterates any iterable of batches once per epoch (no look-ahead possible)."""

    kind = "generic"

    def __init__(self, source: Iterable[Any], start_epoch: int, position: int, inner: Any):
        self.source = source
        self.epoch = start_epoch
        self.position = position
        self._inner = inner
        self._batches: Iterator[Any] | None = None

    def next_batch(self) -> Any:
        if self._batches is None:
            # Started lazily, so a finished forever() never opens an epoch it won't use.
            announce_epoch(self.source, self.epoch)
            if self._inner is not None:
                self.source.load_state_dict(self._inner)  # type: ignore[attr-defined]
                self._inner = None
            self._batches = iter(self.source)
        batch = next(self._batches, EPOCH_END)
        if batch is EPOCH_END:
            self.epoch, self.position, self._batches = self.epoch + 1, 0, None
            return EPOCH_END
        self.position += 1
        return batch

    def position_state(self) -> Any:
        return self.position

    def close(self) -> None:
        shut_down(self._batches)
