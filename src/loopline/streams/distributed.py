"""Even epochs across `torch.distributed` ranks.

DDP runs one all-reduce per backward pass, so a rank that runs out of batches while the
others go on leaves them waiting forever. `even(loader)` ends the epoch on every rank
as soon as any rank runs out: before each batch the ranks agree (one tiny all-reduce,
MIN of "I have a batch") whether all of them have one. That agreement is a host
synchronisation per step by nature; it is cheap next to DDP's own gradient all-reduce.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.distributed as dist

from loopline.streams.protocols import announce_epoch

_END = object()


def all_ranks_agree(flag: bool) -> bool:
    """True when `flag` is true on every rank (just `flag` without distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    vote = torch.tensor(int(flag), device=device)
    dist.all_reduce(vote, op=dist.ReduceOp.MIN)
    return bool(vote.item())


class Even:
    """An iterable of batches whose epochs end on every rank at the same step.

    Iterate it directly for one epoch, or wrap it in `loopline.forever(...)`, which keeps
    the epochs even and the workers busy across epoch boundaries.

    Example:
        >>> import torch, loopline
        >>> loader = torch.utils.data.DataLoader(range(5), batch_size=2)
        >>> stream = loopline.forever(loopline.even(loader), epochs=2)
        >>> [batch.tolist() for batch in stream]  # one rank: every batch, every epoch
        [[0, 1], [2, 3], [4], [0, 1], [2, 3], [4]]
    """

    def __init__(self, loader: Iterable[Any]) -> None:
        self.loader = loader

    def set_epoch(self, epoch: int) -> None:
        announce_epoch(self.loader, epoch)

    def __iter__(self) -> Iterator[Any]:
        batches = iter(self.loader)
        while True:
            batch = next(batches, _END)
            if not all_ranks_agree(batch is not _END):
                return
            yield batch


def even(loader: Iterable[Any]) -> Even:
    """End each epoch on every rank as soon as any rank runs out of batches.

    Every rank then takes the same number of steps per epoch, so DDP never hangs on an
    uneven shard. The batches a rank holds beyond the shortest rank's count are skipped
    for that epoch (at most a few per rank with loopline's sharding).

    Args:
        loader: this rank's iterable of batches, typically a DataLoader.

    Returns:
        An `Even` iterable; `forever(even(loader))` also works.

    Example:
        >>> import loopline
        >>> list(loopline.even([1, 2, 3]))  # without distributed, nothing changes
        [1, 2, 3]
    """
    if isinstance(loader, Even):
        return loader
    return Even(loader)
