"""Endless iteration over a DataLoader, with epochs, no boundary stall, and exact resume.

`forever(loader)` is an iterator of batches that never ends (or ends after `epochs`).
For a plain `DataLoader` it builds one long-lived iteration whose workers run straight
across epoch boundaries (see `_endless.py`), so the first batch of an epoch arrives as
fast as any other. Any other iterable is simply re-iterated each epoch.

Its position is a few integers per rank: the epoch and where in it (see `job.py`).
`state_dict()` saves them and `load_state_dict()` restores them into a fresh
`forever(...)`, which replays the index stream (map-style) or the generators
(from_generator) up to that point, or, under another topology, deals the rest of the
epoch afresh (see `_elastic.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from torch.utils.data import DataLoader

from loopline._checks import check_optional_int
from loopline.streams._endless import (
    EPOCH_END,
    GenericOrder,
    check_not_batched_twice,
    kind_of,
    worker_count,
)
from loopline.streams._identity import TOPOLOGY, check_position, check_same, identity
from loopline.streams._iterable_order import IterableOrder
from loopline.streams._map_order import MapOrder
from loopline.streams._resumable import check_resumable, resizable
from loopline.streams._rng import rng_names
from loopline.streams._rotation import rotation_of
from loopline.streams.distributed import Even, all_ranks_agree
from loopline.streams.errors import EmptyEpoch
from loopline.streams.job import (
    CONSUMED,
    EPOCH,
    FIRST_WORKERS,
    IDENTITY,
    INNER,
    LAYERS,
    POSITION,
    RANKS,
    ROTATION,
    STEP,
    check_count,
    check_entries,
    check_layers,
    check_state,
    incomplete,
    job_state,
    resized,
)
from loopline.streams.protocols import is_sharded
from loopline.streams.shard import distributed_rank_and_size


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
        (1, 4, ['first_workers', 'identity', 'kind', 'layers', 'ranks', 'rotation'])
        >>> stream.close()
    """

    def __init__(
        self, loader: Iterable[Any], *, epochs: int | None = None, reseed: Any = True
    ) -> None:
        check_optional_int("forever", "epochs", epochs, 0)
        self._rngs = rng_names(reseed)
        self.loader = loader
        self.epochs = epochs
        self.epoch = 0
        self.step = 0
        self._even = isinstance(loader, Even)
        self._source: Iterable[Any] = loader.loader if isinstance(loader, Even) else loader
        self._kind = kind_of(self._source)
        self._sharded = is_sharded(getattr(self._source, "dataset", None))
        check_not_batched_twice(self._source)
        self._position: Any = [0] * worker_count(self._source) if self._kind == "iterable" else 0
        self._consumed: list[int] | None = None  # restored samples per shard of this rank
        self._layers: list[list[int]] = []  # after a resize: what the start epoch had
        self._rotation = 0  # after a resize: how the start epoch's first run rotated
        self._first_workers = 1  # after a resize: the start epoch's first run's workers
        self._start_epoch = 0
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
            order = MapOrder(source, epoch, position, self.epochs, self._layers, self._rngs)
            self._delivered = position
        elif self._kind == "iterable":
            assert isinstance(source, DataLoader)
            order = IterableOrder(
                source, epoch, position, self.epochs, consumed=self._consumed, rngs=self._rngs,
                layers=self._layers, rotate=self._rotates(), rotation=self._rotation,
                old_workers=self._first_workers,
            )  # fmt: skip
            self._delivered = sum(position)
        else:
            order = GenericOrder(source, epoch, position, self._inner)
            self._delivered = position
        if self._layers:  # a resized epoch may have nothing left, and is not empty
            self._delivered = 1
        self._order = order
        return order

    def state_dict(self) -> dict[str, Any]:
        """The job's position as a plain dict: per rank, its epoch, step and place in it.

        Under torch.distributed this is a collective: every rank must call it, and each
        gets the whole job's state, which any one of them may save.

        Raises:
            NotResumable: the loader's order cannot be replayed exactly.
        """
        check_resumable(self._source, self._kind)
        order, workers = self._order, worker_count(self._source)
        epoch = order.epoch if order is not None else self.epoch
        position = order.position_state() if order is not None else self._position
        entry = {EPOCH: epoch, STEP: self.step, POSITION: position, CONSUMED: self._consumed_now()}
        carried = self._carried(epoch)  # the first run's settings, of a resized epoch
        state = job_state(
            self._kind,
            identity(self._source, self._kind, workers, self._rngs),
            entry,
            self._layers if carried else [],
            self._rotation if carried else self._epoch_rotation(epoch),
            self._first_workers if carried else workers,
        )
        if self._kind == "generic":
            state[INNER] = self._source.state_dict()  # type: ignore[attr-defined]
        return state

    def _consumed_now(self) -> list[int]:
        """The samples each shard of this rank delivered in the current epoch, where the
        stream can be resized ([] where it cannot)."""
        if not resizable(self._source, self._kind):
            return []
        if isinstance(self._order, (MapOrder, IterableOrder)):
            return self._order.consumed_state()
        if self._consumed is not None:
            return list(self._consumed)
        if self._layers and self._sharded:  # a resized sharded epoch counts per old shard
            return [0] * len(self._layers[0])
        return [0] * (worker_count(self._source) if self._kind == "iterable" else 1)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at a saved position; call it before the first `next()`.

        Under the saved topology each rank continues from its own entry, exactly as the
        uninterrupted run; under another world size, worker count or batch size, the
        rest of the epoch (every sample not yet delivered, each once) is dealt afresh.
        """
        if self._order is not None:
            raise RuntimeError(
                "forever.load_state_dict: this forever() has already started; restore "
                "into a fresh forever(loader) before iterating it"
            )
        check_state(state, self._kind)
        check_resumable(self._source, self._kind)
        workers = worker_count(self._source)
        saved, now = state[IDENTITY], identity(self._source, self._kind, workers, self._rngs)
        # A resizable stream may change its topology; any other only the rank it runs on.
        check_same(saved, now, TOPOLOGY if resizable(self._source, self._kind) else ("rank",))
        ranks, layers = state[RANKS], check_layers(state[LAYERS])
        sizes = (saved.get("workers", 1), *(len(layer) for layer in layers[:1]))
        check_entries(ranks, saved.get("world_size", 1), sizes)
        if layers or any(saved.get(k) != now.get(k) for k in TOPOLOGY if k != "rank"):
            # Resized: the rest of the epoch, as its first run had it, for this topology.
            self.epoch, self.step, self._layers = resized(ranks, layers, self._sharded)
            self._rotation = check_count(state, ROTATION)
            self._first_workers = check_count(state, FIRST_WORKERS, 1)
            self._position = [0] * workers if self._kind == "iterable" else 0
        else:
            self._continue(ranks, now.get("rank", 0), workers)
        self._start_epoch = self.epoch
        self._inner = state.get(INNER)

    def _continue(self, ranks: list[Any], rank: int, workers: int) -> None:
        """Resume this rank where its own entry says, as the uninterrupted run goes on."""
        entry = ranks[rank] if rank < len(ranks) else None
        if entry is None:
            raise incomplete(ranks, f"rank {rank} resumes from its own entry")
        check_position(entry[POSITION], f"state['ranks'][{rank}]", self._kind, workers)
        self.epoch, self.step, self._position = entry[EPOCH], entry[STEP], entry[POSITION]
        self._consumed = list(entry[CONSUMED]) or None

    def _rotates(self) -> bool:
        """Whether each epoch's shards are rotated (see _rotation): even() on several ranks."""
        return self._even and self._kind == "iterable" and distributed_rank_and_size()[1] > 1

    def _carried(self, epoch: int) -> bool:
        """Whether `epoch` is a resized start epoch, which keeps its first run's settings."""
        return bool(self._layers) and epoch == self._start_epoch

    def _epoch_rotation(self, epoch: int) -> int:
        """How far `epoch`'s shards are rotated, for a resize to deal the same."""
        batch_size = getattr(self._source, "batch_size", None)
        return rotation_of(epoch, batch_size) if self._rotates() else 0


def forever(
    loader: Iterable[Any],
    *,
    epochs: int | None = None,
    reseed: bool | str | tuple[str, ...] = True,
) -> Forever:
    """Iterate batches across epoch boundaries without end (or for `epochs` epochs).

    At the start of each epoch `set_epoch(epoch)` is called on the loader's sampler, batch
    sampler and dataset where they have it. With a plain `DataLoader`, workers start once
    and keep working across epoch boundaries, so there is no stall between epochs.

    Args:
        loader: any iterable of batches, a `DataLoader` above all, or `even(loader)`.
        epochs: stop after this many epochs (counting from 0); `None` never stops.
        reseed: seed the global RNGs ("torch", "numpy", "random"; True for all three,
            False for none) before each sample of a map-style dataset or each item of a
            `from_generator` one, from (seed, epoch, index), so that random draws there
            resume exactly; without workers the caller's RNG states are kept as they
            were. Name fewer to pay less (about 1 us a sample for torch, 7 for all).

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
    return Forever(loader, epochs=epochs, reseed=reseed)
