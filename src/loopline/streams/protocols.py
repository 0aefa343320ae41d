"""The protocols a stream stage may follow, each declared once, with the probe that reads it.

A stage opts into a behaviour by having a method or a flag, as PyTorch's own samplers do
(`DistributedSampler.set_epoch`); nothing has to inherit from anything. `forever`,
`bucket` and `even` find out what a loader, sampler or dataset can do only through the
functions below, so each contract is written in one place: its Protocol's docstring.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class EpochAware(Protocol):
    """`set_epoch(epoch)` selects the epoch whose order the next `iter()` gives."""

    def set_epoch(self, epoch: int) -> None: ...


@runtime_checkable
class EpochIterable(Protocol):
    """`iter_epoch(epoch)` gives the items of `epoch` without setting an epoch others share."""

    def iter_epoch(self, epoch: int) -> Iterator[Any]: ...


@runtime_checkable
class Checkpointable(Protocol):
    """`state_dict()` is the position as a plain dict; `load_state_dict(state)` resumes there."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class Placed(Protocol):
    """`place()` is the `(rank, world_size)` whose share of each epoch a sampler gives."""

    def place(self) -> tuple[int, int]: ...


@runtime_checkable
class Dealt(Protocol):
    """`order(epoch)` is the whole job's sequence of an epoch, of which `place()`'s rank
    takes every `world_size`-th item from its rank on (so a resized job can deal the rest)."""

    def order(self, epoch: int) -> Any: ...

    def place(self) -> tuple[int, int]: ...


class Seekable(Protocol):
    """`seekable` is true when `iter_epoch(epoch, start=n)` begins after n items, unmade."""

    seekable: bool


class Replayable(Protocol):
    """`replayable` is true when an epoch's order is a pure function of its (seed, epoch)."""

    replayable: bool


class Resizable(Protocol):
    """`resizable` is true when `iter_epoch(epoch, layers=...)` gives an epoch's items less
    those that earlier topologies delivered (see `_elastic`), in this shard's stride."""

    resizable: bool


class Sharded(Protocol):
    """`sharded` is true when a dataset's generator makes only its own shard's part."""

    sharded: bool


class Batched(Protocol):
    """`batched` is true when a dataset yields whole batches, which must not be batched again."""

    batched: bool


def announce_epoch(source: Any, epoch: int) -> None:
    """Call `set_epoch(epoch)` on the loader and everything it draws from: its sampler and
    batch sampler, the samplers nested inside those (a `BatchSampler`'s `.sampler`), and
    its dataset; each object once, however often it is reached."""
    seen: set[int] = set()
    parts = [
        source,
        getattr(source, "sampler", None),
        getattr(source, "batch_sampler", None),
        getattr(source, "dataset", None),
    ]
    while parts:
        part = parts.pop(0)
        if part is None or id(part) in seen:
            continue
        seen.add(id(part))
        if isinstance(part, EpochAware):
            part.set_epoch(epoch)
        if part is not source:
            parts.append(getattr(part, "sampler", None))  # a sampler that wraps another


def epoch_items(dataset: Iterable[Any], epoch: int) -> Iterator[Any]:
    """The items of `epoch` from this worker's copy of `dataset`."""
    if isinstance(dataset, EpochIterable):
        # Explicit epoch: workers run ahead of each other, so a shared epoch would race.
        return dataset.iter_epoch(epoch)
    if isinstance(dataset, EpochAware):
        dataset.set_epoch(epoch)
    return iter(dataset)


def is_checkpointable(stage: Any) -> bool:
    """Whether `stage` has `state_dict()` and `load_state_dict()` (see `Checkpointable`)."""
    return isinstance(stage, Checkpointable)


def is_replayable(stage: Any) -> bool:
    """Whether `stage` says its epochs replay exactly (see `Replayable`)."""
    return bool(getattr(stage, "replayable", False))


def is_seekable(dataset: Any) -> bool:
    """Whether `dataset` says it can start an epoch anywhere (see `Seekable`)."""
    return bool(getattr(dataset, "seekable", False))


def is_dealt(sampler: Any) -> bool:
    """Whether `sampler` deals strides of one job-wide order (see `Dealt`)."""
    return isinstance(sampler, Dealt)


def is_resizable(dataset: Any) -> bool:
    """Whether `dataset` can continue an epoch under another topology (see `Resizable`)."""
    return bool(getattr(dataset, "resizable", False))


def is_sharded(dataset: Any) -> bool:
    """Whether `dataset` makes only its own shard's part (see `Sharded`)."""
    return bool(getattr(dataset, "sharded", False))


def yields_batches(dataset: Any) -> bool:
    """Whether `dataset` says it yields whole batches (see `Batched`)."""
    return bool(getattr(dataset, "batched", False))
