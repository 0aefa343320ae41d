"""A sampler whose order is a pure function of `(seed, epoch)`.

Because the order of any epoch can be recomputed from two integers, a checkpoint only
needs the epoch and the position in it: resuming skips ahead through indices without
loading the skipped samples. Under `torch.distributed` each rank takes the strided part
`order[rank::world_size]` of one shared permutation, so ranks never overlap.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import numpy as np
from torch.utils.data import Sampler

from loopline._checks import check_place
from loopline.streams.shard import place_of


class EpochSampler(Sampler[int]):
    """Indices in an order fixed by `(seed, epoch)`, sharded across ranks.

    Args:
        dataset_or_len: a sized dataset, or its length.
        shuffle: permute the indices (else keep `0, 1, ..., n-1`).
        seed: the base seed; every rank must use the same one.
        rank, world_size: this rank's place; default from `torch.distributed`.

    Example:
        >>> import loopline
        >>> sampler = loopline.EpochSampler(6, seed=1)
        >>> sampler.set_epoch(3)
        >>> list(sampler) == list(loopline.EpochSampler(6, seed=1).order(3))
        True
        >>> sorted(sampler)
        [0, 1, 2, 3, 4, 5]
    """

    # forever() may checkpoint by (epoch, position) and replay the index stream.
    replayable = True

    def __init__(
        self,
        dataset_or_len: Sized | int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        size = dataset_or_len if isinstance(dataset_or_len, int) else len(dataset_or_len)
        if size < 0:
            raise ValueError(f"EpochSampler: length must be >= 0, got {size}")
        check_place("EpochSampler", rank, world_size)
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self._rank = rank
        self._world_size = world_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next `iter()` yields."""
        self.epoch = epoch

    def order(self, epoch: int) -> np.ndarray:
        """The full permutation (all ranks) of `epoch`."""
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def place(self) -> tuple[int, int]:
        """The `(rank, world_size)` this sampler deals for: as given, else torch.distributed's."""
        return place_of(self._rank, self._world_size)

    def __iter__(self) -> Iterator[int]:
        rank, world_size = self.place()
        return iter(self.order(self.epoch)[rank::world_size].tolist())

    def __len__(self) -> int:
        rank, world_size = self.place()
        return len(range(rank, self.size, world_size))
