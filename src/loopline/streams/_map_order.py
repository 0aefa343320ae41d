"""`forever` over a map-style dataset: one endless sampler instead of one sampler per epoch.

The endless sampler chains the epochs of the loader's own (batch) sampler and notes the
epoch of every batch it hands out; since a DataLoader returns batches in the order their
indices were drawn, the consumer pops one epoch number per batch and so finds each epoch
boundary in the ordered output. A position is a batch count within an epoch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from itertools import count, islice
from typing import Any

from torch.utils.data import DataLoader

from loopline.streams._endless import EPOCH_END, index_sampler, rebuild, shut_down
from loopline.streams.errors import EmptyEpoch
from loopline.streams.protocols import announce_epoch


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
