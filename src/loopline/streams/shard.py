"""Where am I? The shard a piece of data-loading code runs in.

A shard is one (rank, worker) pair: `torch.distributed` ranks times DataLoader workers.
Shards are numbered rank-major, `index = rank * num_workers + worker`, so that the
shards of one rank are neighbours. A generator that can produce only its own part
cheaply asks `current_shard()` and keeps the items whose position `i` has
`i % count == index`, or any other disjoint split it prefers.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

import torch.distributed as dist
from torch.utils.data import get_worker_info


@dataclass(frozen=True)
class Shard:
    """One (rank, worker) pair of a data-loading run.

    Attributes:
        index: this shard's number, `rank * num_workers + worker`, in `[0, count)`.
        count: the number of shards, `world_size * num_workers`.
        rank: the `torch.distributed` rank (0 without distributed).
        world_size: the number of ranks (1 without distributed).
        worker: the DataLoader worker id (0 in the main process).
        num_workers: DataLoader workers per rank (1 in the main process).
        epoch: the epoch the dataset was set to with `set_epoch`.
        seed: the dataset's base seed, the same on every shard.
        start: how many items of the sequence a `seekable` generator is to leave out,
            because a resumed run has had them: of its own sequence with
            `sharded=True`, of the full one otherwise (0 on a fresh start).

    Example:
        >>> import loopline
        >>> s = loopline.Shard(index=3, count=4, rank=1, world_size=2, worker=1, num_workers=2)
        >>> [i for i in range(10) if s.owns(i)]  # every count-th item from its index
        [3, 7]
    """

    index: int = 0
    count: int = 1
    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1
    epoch: int = 0
    seed: int = 0
    start: int = 0

    def owns(self, position: int) -> bool:
        """Whether the item at `position` of the full sequence belongs to this shard."""
        return position % self.count == self.index


# Set by a dataset while its generator runs, so `current_shard()` can report the
# dataset's epoch and seed; unset elsewhere.
_active: contextvars.ContextVar[Shard | None] = contextvars.ContextVar(
    "loopline_active_shard", default=None
)


def current_shard() -> Shard:
    """The shard the calling code runs in.

    Inside a `from_generator` generator (sharded or not) this includes the dataset's
    epoch and seed (and `start` for a seekable one); elsewhere epoch and seed are 0.
    Outside any DataLoader worker and without `torch.distributed` it is shard 0 of 1.

    Returns:
        A frozen `Shard`.

    Example:
        >>> import loopline
        >>> loopline.current_shard()  # doctest: +NORMALIZE_WHITESPACE
        Shard(index=0, count=1, rank=0, world_size=1, worker=0, num_workers=1, epoch=0,
              seed=0, start=0)
    """
    active = _active.get()
    return active if active is not None else detect_shard()


def detect_shard(*, epoch: int = 0, seed: int = 0, place: tuple[int, int] | None = None) -> Shard:
    """The shard of the calling process, from torch.distributed and the worker info.

    `place` is the `(rank, world_size)` recorded in the rank's own process, used where
    torch.distributed is not initialised: DataLoader workers started with spawn or
    forkserver do not inherit the process group.
    """
    if place is not None and not _initialized():
        _inherited[:] = [place]  # so current_shard() in this worker knows its rank too
    rank, world_size = distributed_rank_and_size()
    info = get_worker_info()
    worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return shard_of(rank, world_size, worker, num_workers, epoch=epoch, seed=seed)


def shard_of(
    rank: int, world_size: int, worker: int, num_workers: int, *, epoch: int = 0, seed: int = 0
) -> Shard:
    """The shard of DataLoader worker `worker` of `num_workers` on `rank` of `world_size`."""
    if not (0 <= rank < world_size and 0 <= worker < num_workers):
        raise ValueError(
            f"shard_of: need 0 <= rank < world_size and 0 <= worker < num_workers, got rank "
            f"{rank} of {world_size}, worker {worker} of {num_workers}"
        )
    return Shard(
        index=rank * num_workers + worker,
        count=world_size * num_workers,
        rank=rank,
        world_size=world_size,
        worker=worker,
        num_workers=num_workers,
        epoch=epoch,
        seed=seed,
    )


# The place a spawned worker was given by its rank's process (see detect_shard).
_inherited: list[tuple[int, int]] = []


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def distributed_rank_and_size() -> tuple[int, int]:
    """`(rank, world_size)` of the default process group (or the one a spawned worker
    inherited), `(0, 1)` without one."""
    if _initialized():
        return dist.get_rank(), dist.get_world_size()
    return _inherited[-1] if _inherited else (0, 1)


def place_of(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """`(rank, world_size)` as given (both, checked by the caller), else torch.distributed's."""
    if rank is not None and world_size is not None:
        return rank, world_size
    return distributed_rank_and_size()


def activate(shard: Shard) -> contextvars.Token[Shard | None]:
    """Make `current_shard()` return `shard` until `deactivate(token)`.

    A plain pair rather than a context manager: it runs around every item a generator
    yields, where a `@contextmanager` would cost several times the item itself.
    """
    return _active.set(shard)


def deactivate(token: contextvars.Token[Shard | None]) -> None:
    _active.reset(token)
