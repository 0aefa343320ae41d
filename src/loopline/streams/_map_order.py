"""`forever` over a map-style dataset: one endless sampler instead of one sampler per epoch.

The endless sampler chains the epochs of the loader's own (batch) sampler and notes the
epoch of every batch it hands out; since a DataLoader returns batches in the order their
indices were drawn, the consumer pops one epoch number per batch and so finds each epoch
boundary in the ordered output. A position is a batch count within an epoch.

With `in_order=False` batches come as workers finish them, so each carries its epoch
(`_epoch_tags`), and a batch that arrives before its epoch is due waits until every batch
handed out for the epoch before has arrived: each epoch holds exactly its own samples.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from itertools import count, islice
from typing import Any

from torch.utils.data import BatchSampler, DataLoader

from loopline.streams._elastic import Layers, remaining_positions
from loopline.streams._endless import EPOCH_END, in_order, index_sampler, rebuild, shut_down
from loopline.streams._epoch_tags import EpochMark, MarkedCollate, MarkedDataset
from loopline.streams._rng import Reseeder, SeededDataset, callers_rngs
from loopline.streams.errors import EmptyEpoch
from loopline.streams.protocols import announce_epoch


class EndlessSampler:
    """Chains the epochs of a (batch) sampler, noting the epoch of every batch it hands out."""

    def __init__(
        self,
        loader: DataLoader,
        start_epoch: int,
        skip: int,
        stop_epoch: int | None,
        *,
        marked: bool = False,
        layers: Layers = (),
        seeded: bool = False,
    ):
        self.loader = loader
        self.seeded = seeded  # hand out (epoch, index) keys, for a SeededDataset
        self.start_epoch = start_epoch
        self.skip = skip
        self.stop_epoch = stop_epoch
        self.marked = marked  # put an EpochMark in front of every batch's indices
        # In order, the DataLoader returns batches in the order it drew their indices, so
        # the consumer pops one epoch number per batch it receives.
        self.epochs_handed_out: deque[int] = deque()
        self.handed = Counter[int]()  # batches handed out per epoch
        self.finished = start_epoch - 1  # the last epoch wholly handed out
        # After a resize, the start epoch deals what the earlier topologies left.
        self.layers = layers
        self.start_share = dealt_share(loader, start_epoch, layers) if layers else None

    def __iter__(self) -> Iterator[Any]:
        inner = index_sampler(self.loader)
        batched = self.loader.batch_sampler is not None  # indices come as lists
        epochs = (
            count(self.start_epoch)
            if self.stop_epoch is None
            else range(self.start_epoch, self.stop_epoch)
        )
        for epoch in epochs:
            announce_epoch(self.loader, epoch)
            skip = self.skip if epoch == self.start_epoch else 0
            size = skip
            mark = EpochMark(epoch)
            batches: Iterator[Any] = islice(inner, skip, None)
            if epoch == self.start_epoch and self.start_share is not None:
                batches = in_batches(self.start_share, inner)
                size = 1  # an epoch left with nothing is not an empty epoch
            for indices in batches:
                size += 1
                if self.seeded:
                    indices = [(epoch, i) for i in indices] if batched else (epoch, indices)
                if self.marked:
                    self.handed[epoch] += 1
                    yield [mark, *indices] if batched else (mark, indices)
                else:
                    self.epochs_handed_out.append(epoch)
                    yield indices
            self.finished = epoch
            if size == 0:
                raise EmptyEpoch(
                    f"forever: epoch {epoch} of the DataLoader produced no batch (its "
                    f"sampler {type(inner).__name__} is empty{_drop_last_hint(self.loader)}); "
                    "iterating it forever would spin without end"
                )


def dealt_share(loader: DataLoader, epoch: int, layers: Layers) -> list[int]:
    """This rank's share of what `layers` left of `epoch`'s order: every world_size-th."""
    inner = dealt_sampler(index_sampler(loader))
    order = inner.order(epoch)
    rank, world_size = inner.place()
    return order[remaining_positions(len(order), layers)][rank::world_size].tolist()


def dealt_sampler(sampler: Any) -> Any:
    """The sampler of single indices (inside a BatchSampler or not)."""
    return sampler.sampler if isinstance(sampler, BatchSampler) else sampler


def in_batches(share: list[int], sampler: Any) -> Iterator[Any]:
    """The indices of `share` as `sampler` hands them out: in batches for a BatchSampler."""
    if not isinstance(sampler, BatchSampler):
        yield from share
        return
    size = sampler.batch_size
    for begin in range(0, len(share), size):
        batch = share[begin : begin + size]
        if len(batch) == size or not sampler.drop_last:
            yield batch


def _drop_last_hint(loader: DataLoader) -> str:
    return ", or drop_last=True dropped its only partial batch" if loader.drop_last else ""


class MapOrder:
    """Ordered batches of an endless map-style loader, split into epochs."""

    def __init__(
        self,
        loader: DataLoader,
        start_epoch: int,
        position: int,
        stop: int | None,
        layers: Layers = (),
        rngs: tuple[str, ...] = (),
    ):
        marked = not in_order(loader)  # batches come as they are done
        self.sampler = EndlessSampler(
            loader, start_epoch, position, stop, marked=marked, layers=layers, seeded=bool(rngs)
        )
        self._loader = loader
        # Without workers, samples are made here: keep the caller's RNGs as they were.
        self._callers = rngs if loader.num_workers == 0 else ()
        batched = loader.batch_sampler is not None
        settings: dict[str, Any] = {"batch_sampler": self.sampler}
        if not batched:
            settings = {"batch_size": None, "sampler": self.sampler}
        dataset: Any = loader.dataset
        if rngs:
            seed = getattr(dealt_sampler(index_sampler(loader)), "seed", 0)
            dataset = SeededDataset(dataset, Reseeder(rngs, seed if isinstance(seed, int) else 0))
        settings["dataset"] = MarkedDataset(dataset) if marked else dataset
        collate = MarkedCollate(loader.collate_fn, batched) if marked else loader.collate_fn
        self.epoch = start_epoch
        self.position = position
        with callers_rngs(self._callers):  # iter() draws a base seed from torch's RNG
            self._batches = iter(rebuild(loader, collate_fn=collate, **settings))
        self._held: tuple[int, Any] | None = None  # a next-epoch batch, kept for later
        self._marked = marked
        self._early: dict[int, deque[Any]] = {}  # out of order: batches of later epochs
        self._received = Counter[int]()  # out of order: batches arrived per epoch

    def next_batch(self) -> Any:
        if self._marked:
            return self._next_marked()
        if self._held is None:
            with callers_rngs(self._callers):
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

    def _next_marked(self) -> Any:
        """The next batch of the current epoch in the order batches arrive, or EPOCH_END
        once every batch handed out for it has arrived."""
        while True:
            early = self._early.get(self.epoch)
            if early:
                self.position += 1
                return early.popleft()
            sampler, epoch = self.sampler, self.epoch
            if sampler.finished >= epoch and self._received[epoch] == sampler.handed[epoch]:
                self._early.pop(epoch, None)
                self._received.pop(epoch, None)
                sampler.handed.pop(epoch, None)
                self.epoch, self.position = epoch + 1, 0
                return EPOCH_END
            with callers_rngs(self._callers):
                item: Any = next(self._batches, EPOCH_END)
            if item is EPOCH_END:  # epochs ran out (stop_epoch)
                self.epoch, self.position = epoch + 1, 0
                return EPOCH_END
            tag, batch = item
            self._received[tag] += 1
            if tag == epoch:
                self.position += 1
                return batch
            self._early.setdefault(tag, deque()).append(batch)  # due in a later epoch

    def position_state(self) -> Any:
        return self.position

    def consumed_state(self) -> list[int]:
        """The samples this rank delivered in the current epoch (one shard: the rank)."""
        sampler = index_sampler(self._loader)
        if self.epoch == self.sampler.start_epoch and self.sampler.start_share is not None:
            share = len(self.sampler.start_share)
        else:
            share = len(dealt_sampler(sampler))
        batch = sampler.batch_size if isinstance(sampler, BatchSampler) else 1
        return [min(self.position * batch, share)]

    def close(self) -> None:
        shut_down(self._batches)
