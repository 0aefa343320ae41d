"""The machinery behind `forever`: one DataLoader iteration that spans many epochs.

A DataLoader stalls at every epoch boundary because its workers run dry: the sampler
ends, the prefetch queue drains, and the next epoch starts from an empty pipeline. To
keep workers busy across the boundary, `forever` rebuilds the loader once with the same
settings but an endless source, and finds the boundaries itself: `_map_order` for
map-style datasets, `_iterable_order` for iterable ones, `GenericOrder` here for any
other iterable. Each is an "order": `next_batch()` gives a batch or `EPOCH_END`, and
positions are plain integers, which is what makes exact resume possible. This module
holds what they share.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from torch.utils.data import DataLoader, IterableDataset
from torch.utils.data.sampler import BatchSampler, SequentialSampler

from loopline.streams.protocols import announce_epoch, is_replayable, yields_batches

EPOCH_END = object()  # returned by an order when the current epoch has no batch left


def index_sampler(loader: DataLoader) -> Any:
    """The sampler a DataLoader draws its batches' indices from."""
    # Not `batch_sampler or sampler`: an empty batch sampler is falsy.
    return loader.batch_sampler if loader.batch_sampler is not None else loader.sampler


def in_order(loader: Any) -> bool:
    """Whether the loader returns batches in the order their indices were drawn (a torch
    without the `in_order` option always does)."""
    return bool(getattr(loader, "in_order", True))


def shut_down(batches: Any) -> None:
    """Stop a DataLoader iterator's worker processes now rather than at garbage collection."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if callable(shutdown):
        shutdown()


def sampler_replays(sampler: Any) -> bool:
    """Whether a sampler's order is a pure function of its epoch."""
    if isinstance(sampler, BatchSampler):
        return sampler_replays(sampler.sampler)
    if isinstance(sampler, SequentialSampler) or is_replayable(sampler):
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


def kind_of(source: Iterable[Any]) -> str:
    """Which order forever() uses: map or iterable (a plain DataLoader), else generic."""
    # Only an exact DataLoader is rebuilt: a subclass may change what iteration means.
    if type(source) is not DataLoader:
        return "generic"
    return "iterable" if isinstance(source.dataset, IterableDataset) else "map"


def worker_count(source: Iterable[Any]) -> int:
    """The shards a loader splits an iterable dataset into: its workers, or 1 without."""
    return max(1, getattr(source, "num_workers", 0))


def check_not_batched_twice(source: Iterable[Any]) -> None:
    """Refuse a DataLoader that would batch a dataset of whole batches again."""
    batch_size = getattr(source, "batch_size", None)
    if yields_batches(getattr(source, "dataset", None)) and batch_size is not None:
        raise ValueError(
            f"forever: the dataset yields whole batches (batched=True) but the DataLoader "
            f"has batch_size={batch_size}, which would stack {batch_size} of them into "
            f"[{batch_size}, batch, ...]; pass batch_size=None"
        )


class GenericOrder:
    """Re-iterates any iterable of batches once per epoch (no look-ahead possible)."""

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
