"""Endless iteration over a DataLoader, with epochs, no boundary stall, and exact resume.

`forever(loader)` is an iterator of batches that never ends (or ends after `epochs`).
For a plain `DataLoader` it builds one long-lived iteration whose workers run straight
across epoch boundaries (see `_endless.py`), so the first batch of an epoch arrives as
fast as any other. Any other iterable is simply re-iterated each epoch.

Its position is a few integers: the epoch and where in it. `state_dict()` saves them and
`load_state_dict()` restores them into a fresh `forever(...)`, which replays the index
stream (map-style) or the generators (from_generator) up to that point.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from torch.utils.data import DataLoader, IterableDataset

from loopline._checks import check_optional_int
from loopline.streams._endless import (
    EPOCH_END,
    GenericOrder,
    in_order,
    index_sampler,
    sampler_replays,
)
from loopline.streams._identity import check_positions, check_same, identity
from loopline.streams._iterable_order import IterableOrder
from loopline.streams._map_order import MapOrder
from loopline.streams.distributed import Even, all_ranks_agree
from loopline.streams.errors import EmptyEpoch, NotResumable
from loopline.streams.protocols import is_checkpointable, is_replayable, yields_batches

# Keys of the state dict.
EPOCH = "epoch"
STEP = "step"
KIND = "kind"
POSITION = "position"
INNER = "inner"
IDENTITY = "identity"  # the settings the position holds under (see _identity.py)


class Forever(Iterator[Any]):
    """An endless iterator of batches; build it with `loopline.forever`.

    Attributes:
        epoch: the epoch of the last batch returned (the starting epoch before any).
        step: the number of batches returned since the start (restored on resume).

    Example:
        >>> import loopline, torch
        >>> loader = torch.utils.data.DataLoader(range(5), batch_size=2)
        >>> stream = loopline.forever(loader)
        >>> [next(stream).tolist() for _ in range(4)]
        [[0, 1], [2, 3], [4], [0, 1]]
        >>> stream.epoch, stream.step, sorted(stream.state_dict())
        (1, 4, ['epoch', 'identity', 'kind', 'position', 'step'])
        >>> stream.close()
    """

    def __init__(self, loader: Iterable[Any], *, epochs: int | None = None) -> None:
        check_optional_int("forever", "epochs", epochs, 0)
        self.loader = loader
        self.epochs = epochs
        self.epoch = 0
        self.step = 0
        self._even = isinstance(loader, Even)
        self._source: Iterable[Any] = loader.loader if isinstance(loader, Even) else loader
        self._kind = _kind_of(self._source)
        _check_not_batched_twice(self._source)
        self._position: Any = [0] * _workers(self._source) if self._kind == "iterable" else 0
        self._inner: Any = None
        self._order: MapOrder | IterableOrder | GenericOrder | None = None
        self._delivered = 0  # batches returned in the current epoch
        self._closed = False

    def __iter__(self) -> Forever:
        return self

    def __enter__(self) -> Forever:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the loader's worker processes now; the stream yields nothing more."""
        if self._order is not None:
            self._order.close()
        self._closed = True

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        order = self._order or self._open()
        while self.epochs is None or order.epoch < self.epochs:
            batch = order.next_batch()
            if self._even and not all_ranks_agree(batch is not EPOCH_END):
                # Another rank ran out: skip the rest of this epoch here too.
                while batch is not EPOCH_END:
                    batch = order.next_batch()
            if batch is EPOCH_END:
                if self._delivered == 0:
                    raise EmptyEpoch(
                        f"forever: epoch {order.epoch - 1} produced no batch"
                        f"{' on at least one rank' if self._even else ''} "
                        f"(loader {type(self._source).__name__}); iterating it forever "
                        "would spin without end"
                    )
                self._delivered = 0
                continue
            self._delivered += 1
            self.step += 1
            self.epoch = order.epoch
            return batch
        raise StopIteration

    def _open(self) -> MapOrder | IterableOrder | GenericOrder:
        source, epoch, position = self._source, self.epoch, self._position
        order: MapOrder | IterableOrder | GenericOrder
        if self._kind == "map":
            assert isinstance(source, DataLoader)
            order = MapOrder(source, epoch, position, self.epochs)
            self._delivered = position
        elif self._kind == "iterable":
            assert isinstance(source, DataLoader)
            order = IterableOrder(source, epoch, position, self.epochs)
            self._delivered = sum(position)
        else:
            order = GenericOrder(source, epoch, position, self._inner)
            self._delivered = position
        self._order = order
        return order

    def state_dict(self) -> dict[str, Any]:
        """The position as a plain dict: epoch, step and where in the epoch.

        Raises:
            NotResumable: the loader's order cannot be replayed exactly.
        """
        self._check_resumable()
        order = self._order
        state = {
            KIND: self._kind,
            EPOCH: order.epoch if order is not None else self.epoch,
            STEP: self.step,
            POSITION: order.position_state() if order is not None else self._position,
            IDENTITY: identity(self._source, self._kind, _workers(self._source)),
        }
        if self._kind == "generic":
            state[INNER] = self._source.state_dict()  # type: ignore[attr-defined]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at a saved position; call it before the first `next()`."""
        if self._order is not None:
            raise RuntimeError(
                "forever.load_state_dict: this forever() has already started; restore "
                "into a fresh forever(loader) before iterating it"
            )
        missing = {KIND, EPOCH, STEP, POSITION, IDENTITY} - set(state)
        if missing:
            raise KeyError(f"forever.load_state_dict: state lacks keys {sorted(missing)}")
        if state[KIND] != self._kind:
            raise ValueError(
                f"forever.load_state_dict: the state was saved from a {state[KIND]} loader "
                f"but this forever() wraps a {self._kind} loader"
            )
        self._check_resumable()
        workers = _workers(self._source)
        check_positions(state[EPOCH], state[STEP], state[POSITION], self._kind, workers)
        check_same(state[IDENTITY], identity(self._source, self._kind, workers))
        self.epoch, self.step, self._position = state[EPOCH], state[STEP], state[POSITION]
        self._inner = state.get(INNER)

    def _check_resumable(self) -> None:
        source = self._source
        if self._kind != "generic" and not in_order(source):
            raise NotResumable(
                "forever: a DataLoader with in_order=False returns batches in whatever "
                "order workers finish, so its position cannot be restored exactly; use "
                "in_order=True"
            )
        if self._kind == "map":
            assert isinstance(source, DataLoader)
            sampler = index_sampler(source)
            if not sampler_replays(sampler):
                inner = getattr(sampler, "sampler", sampler)  # inside a BatchSampler
                raise NotResumable(
                    f"forever: the DataLoader's sampler {type(inner).__name__} does not "
                    "give the same order when an epoch is replayed (RandomSampler draws a new "
                    "one), so its position cannot be restored exactly; pass "
                    "sampler=loopline.EpochSampler(dataset, seed=...) instead of shuffle=True"
                )
        elif self._kind == "iterable":
            assert isinstance(source, DataLoader)
            dataset = source.dataset
            if not is_replayable(dataset):
                raise NotResumable(
                    f"forever: the iterable dataset {type(dataset).__name__} cannot be "
                    "replayed to a position; build it with loopline.from_generator(fn) from "
                    "a generator that is deterministic given loopline.current_shard()'s "
                    "seed and epoch"
                )
        elif not is_checkpointable(source):
            raise NotResumable(
                f"forever: {type(source).__name__} has no state_dict()/load_state_dict(), so "
                "its position cannot be restored exactly; wrap a torch DataLoader or a "
                "loader with state_dict()"
            )


def forever(loader: Iterable[Any], *, epochs: int | None = None) -> Forever:
    """Iterate batches across epoch boundaries without end (or for `epochs` epochs).

    At the start of each epoch `set_epoch(epoch)` is called on the loader's sampler, batch
    sampler and dataset where they have it. With a plain `DataLoader`, workers start once
    and keep working across epoch boundaries, so there is no stall between epochs.

    Args:
        loader: any iterable of batches, a `DataLoader` above all, or `even(loader)`.
        epochs: stop after this many epochs (counting from 0); `None` never stops.

    Returns:
        A `Forever` iterator with `.epoch`, `.step`, `state_dict()`, `load_state_dict()`.

    Raises:
        EmptyEpoch: (when iterating) an epoch produced no batch.

    Example:
        >>> import loopline, torch
        >>> loader = torch.utils.data.DataLoader(range(5), batch_size=2)
        >>> stream = loopline.forever(loader, epochs=2)
        >>> [(stream.epoch, batch.tolist()) for batch in stream]
        [(0, [0, 1]), (0, [2, 3]), (0, [4]), (1, [0, 1]), (1, [2, 3]), (1, [4])]
    """
    return Forever(loader, epochs=epochs)


def _kind_of(source: Iterable[Any]) -> str:
    # Only an exact DataLoader is rebuilt: a subclass may change what iteration means.
    if type(source) is not DataLoader:
        return "generic"
    return "iterable" if isinstance(source.dataset, IterableDataset) else "map"


def _check_not_batched_twice(source: Iterable[Any]) -> None:
    batch_size = getattr(source, "batch_size", None)
    if yields_batches(getattr(source, "dataset", None)) and batch_size is not None:
        raise ValueError(
            f"forever: the dataset yields whole batches (batched=True) but the DataLoader "
            f"has batch_size={batch_size}, which would stack {batch_size} of them into "
            f"[{batch_size}, batch, ...]; pass batch_size=None"
        )


def _workers(source: Iterable[Any]) -> int:
    return max(1, getattr(source, "num_workers", 0))
