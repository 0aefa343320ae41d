"""Generator-backed datasets: a generator *function* becomes a re-iterable dataset.

Think of `from_generator(fn, *args)` as a recipe, not a stream: every `iter()` calls
`fn(*args)` afresh, so the dataset can be iterated for many epochs, pickled to spawned
workers, and split between shards. Unless `sharded=True`, every shard runs the full
generator and keeps the items at positions `i` with `i % count == index`, so the union
over all (rank, worker) shards is exactly `fn`'s sequence, each item once.

The epoch lives in a shared-memory tensor, so `set_epoch` in the main process reaches
the copies held by DataLoader workers, persistent ones included.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from functools import partial
from itertools import islice
from typing import Any

import torch
from torch.utils.data import IterableDataset

from loopline._checks import check_int
from loopline._pickling import check_picklable, describe
from loopline.streams._elastic import Layers, first_unconsumed, keeper, undelivered
from loopline.streams._resharded import old_shards_rest
from loopline.streams._rotation import dealt_rotated, rotated
from loopline.streams.errors import GeneratorFailed
from loopline.streams.shard import (
    Shard,
    activate,
    deactivate,
    detect_shard,
    distributed_rank_and_size,
)


class GeneratorDataset(IterableDataset):
    """An `IterableDataset` that calls a generator function afresh for every `iter()`.

    Build it with `loopline.from_generator`. Attributes: `sharded` (the function produces
    only its own shard), `seed` (the base seed reported by `current_shard()`, the same on
    every shard, workers included), `epoch` (see `set_epoch`).

    Example:
        >>> import loopline
        >>> def count(n):
        ...     yield from range(n)
        >>> dataset = loopline.from_generator(count, 3)
        >>> list(dataset), list(dataset)  # a fresh generator for every iter()
        ([0, 1, 2], [0, 1, 2])
    """

    # Its sequence is a function of (seed, epoch) as long as fn's is, so forever() may
    # resume by replaying it.
    replayable = True

    def __init__(
        self,
        fn: Callable[..., Iterable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        sharded: bool,
        batched: bool = False,
        seed: int = 0,
        seekable: bool = False,
    ) -> None:
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self.sharded = sharded
        self.batched = batched
        self.seekable = seekable  # fn starts at current_shard().start (see from_generator)
        # Shared memory so the main process's set_epoch reaches worker copies.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._seed = torch.zeros((), dtype=torch.int64).share_memory_()
        self.seed = seed
        # (rank, world_size) of the process that pickled this dataset for its workers.
        self._place: tuple[int, int] | None = None

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    @property
    def seed(self) -> int:
        return int(self._seed)

    @seed.setter
    def seed(self, seed: int) -> None:
        self._seed.fill_(check_int("from_generator", "seed", seed))

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch every shard sees from now on, in workers too."""
        self._epoch.fill_(check_int("set_epoch", "epoch", epoch, 0))

    def __iter__(self) -> Iterator[Any]:
        return self.iter_epoch(self.epoch)

    # An epoch can go on under another topology (see iter_epoch's layers).
    resizable = True

    def iter_epoch(
        self,
        epoch: int,
        shard: Shard | None = None,
        *,
        start: int = 0,
        layers: Layers = (),
        reseed: Callable[[int, int], None] | None = None,
        rotation: int = 0,
        old_workers: int | None = None,
    ) -> Iterator[Any]:
        """This shard's items for `epoch` (the detected shard unless one is given), less
        its first `start` ones: a seekable generator begins after them itself (told by
        `current_shard().start`), another one is replayed past them.

        With `layers` (a resumed job of another topology), the items are this shard's
        stride of what the earlier topologies left of the full sequence (see _elastic), or
        for a sharded generator `(old shard, item)` pairs (see _resharded; `old_workers`
        per rank then).
        `reseed(epoch, index)` runs before each item is made: index is the item's place
        in the full sequence (see _rng). `rotation` moves that many of this shard's own
        items to its end (with `layers`: of each shard of the epoch's first run's; see
        _rotation)."""
        shard = replace(shard or detect_shard(place=self._place), epoch=epoch, seed=self.seed)
        if layers and self.sharded:  # (old shard, item) pairs: see _resharded
            own_from = partial(self.own_from, reseed=reseed)
            workers = old_workers or 1
            return old_shards_rest(own_from, shard, layers[0], workers, rotation, self.seekable)
        if layers:
            if rotation:  # the epoch's first run rotated its shards: deal in its order
                whole = self._items(shard, keep_all=True, reseed=reseed)
                full, begin = dealt_rotated(whole, rotation, len(layers[0])), 0
                left = undelivered(full, layers, begin)
                return islice(left, shard.index + start * shard.count, None, shard.count)
            # A seekable generator begins where the first layer delivered all.
            begin = first_unconsumed(layers) if self.seekable else 0
            wanted = keeper(layers, begin, shard.index, shard.count)
            place = replace(shard, start=begin)
            mine = self._items(place, begin, reseed=reseed, wanted=wanted, unseeded=start)
            return islice(mine, start, None)
        if rotation:
            own_from = partial(self.own_from, shard, reseed=reseed)
            return rotated(own_from, rotation, start, self.seekable)
        if not self.seekable:  # replayed: the items left out need no seeding
            return islice(self._items(shard, reseed=reseed, unseeded=start), start, None)
        return self.own_from(shard, start, reseed=reseed)

    def own_from(
        self, shard: Shard, own: int, *, reseed: Callable[[int, int], None] | None
    ) -> Iterator[Any]:
        """This shard's own items from its `own`-th on (told to a seekable generator)."""
        if not self.seekable:
            return self._items(shard, reseed=reseed)
        # Its own sequence's items, or the full sequence's up to this shard's next one.
        begin = own if self.sharded else own * shard.count
        return self._items(replace(shard, start=begin), begin, reseed=reseed)

    def _items(
        self,
        shard: Shard,
        position: int = 0,
        *,
        keep_all: bool = False,
        reseed: Callable[[int, int], None] | None = None,
        unseeded: int = 0,
        wanted: Callable[[int], bool] | None = None,
    ) -> Iterator[Any]:
        name = describe(self._fn)
        where = "its own sequence" if self.sharded else "the full sequence"
        keep_all, count, index = keep_all or self.sharded, shard.count, shard.index
        try:
            token = activate(shard)
            try:
                source = self._fn(*self._args, **self._kwargs)
            finally:
                deactivate(token)
            if not isinstance(source, Iterable):
                raise TypeError(f"{name}(...) returned {type(source).__name__}, not an iterable")
            source, kept = iter(source), 0
            while True:
                if wanted is not None:  # a resized epoch's test (see _elastic.keeper)
                    mine = wanted(position)
                else:
                    mine = keep_all or position % count == index
                # Seeded only if kept: another shard's item, or one left out, draws anything.
                if reseed is not None and mine and kept >= unseeded:
                    # A sharded generator's own items are numbered as if dealt round robin.
                    reseed(shard.epoch, position * count + index if self.sharded else position)
                # The generator's body runs inside next(), so activate the shard there.
                token = activate(shard)
                try:
                    item = next(source)
                except StopIteration:
                    return
                finally:
                    deactivate(token)
                if mine:
                    kept += 1
                    yield item
                position += 1
        except GeneratorFailed:
            raise
        except Exception as error:
            raise GeneratorFailed(
                f"from_generator: {name} raised {type(error).__name__}: {error} at sample "
                f"{position} of {where}, in shard {shard.index} of {shard.count} (rank "
                f"{shard.rank}, worker {shard.worker}, epoch {shard.epoch})"
            ) from error

    def __getstate__(self) -> dict[str, Any]:
        # Pickling happens when workers are spawned; fail here with a useful message
        # rather than deep inside multiprocessing.
        check_picklable("from_generator", self._fn, args=self._args, kwargs=self._kwargs)
        # Spawned workers do not inherit the process group: carry the rank along.
        return {**self.__dict__, "_place": distributed_rank_and_size()}

    def __repr__(self) -> str:
        return (
            f"from_generator({describe(self._fn)}, sharded={self.sharded}, batched={self.batched})"
        )


def from_generator(
    fn: Callable[..., Iterable[Any]],
    *args: Any,
    sharded: bool = False,
    batched: bool = False,
    seed: int = 0,
    seekable: bool = False,
    **kwargs: Any,
) -> GeneratorDataset:
    """Turn a generator function into a re-iterable, shard-aware `IterableDataset`.

    Each `iter()` calls `fn(*args, **kwargs)` afresh. In DataLoader workers and under
    `torch.distributed`, each (rank, worker) shard yields a disjoint part of the sequence
    and the union is exactly `fn`'s sequence, each item once.

    Args:
        fn: a callable returning an iterable, typically a generator function. Pass the
            function, not a generator object. Under the spawn start method it must be
            picklable: a module-level function or a `functools.partial` of one.
        *args, **kwargs: passed to `fn` on every iteration.
        sharded: `fn` already yields only the part of `loopline.current_shard()`.
        batched: `fn` yields whole batches. Shards then split the stream batch by batch,
            and the DataLoader must not batch again: use `batch_size=None` (`forever`
            checks it), or batches of 32 become `[32, 32, ...]`.
        seed: the stream's base seed, an int, reported to `fn` by `current_shard().seed`
            on every shard (it is loopline's: `fn` never receives it as an argument).
        seekable: `fn` begins after the first `current_shard().start` items of its
            sequence (its own with `sharded=True`, the full one otherwise), so a resumed
            stream starts at once instead of replaying the generator up to its position.

    Returns:
        A `GeneratorDataset` with `set_epoch(epoch)` and a `seed` attribute.

    Raises:
        TypeError: `fn` is not callable, or is a generator object.

    Example:
        >>> import loopline
        >>> def count(n):
        ...     yield from range(n)
        >>> ds = loopline.from_generator(count, 4)
        >>> list(ds), list(ds)
        ([0, 1, 2, 3], [0, 1, 2, 3])
    """
    if inspect.isgenerator(fn) or isinstance(fn, Iterator):
        raise TypeError(
            f"from_generator: fn must be a generator function, got a {type(fn).__name__} "
            "object, which can be consumed only once; pass the function and its "
            "arguments instead: from_generator(make_samples, n), not "
            "from_generator(make_samples(n))"
        )
    if not callable(fn):
        raise TypeError(
            f"from_generator: fn must be a callable that returns an iterable (a generator "
            f"function), got {type(fn).__name__}; to wrap a list or tensor use a "
            "map-style Dataset instead"
        )
    for name, flag in (("sharded", sharded), ("batched", batched), ("seekable", seekable)):
        if not isinstance(flag, bool):
            raise TypeError(f"from_generator: {name} must be True or False, got {flag!r}")
    return GeneratorDataset(
        fn, args, kwargs, sharded=sharded, batched=batched, seed=seed, seekable=seekable
    )
