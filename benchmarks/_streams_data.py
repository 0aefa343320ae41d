"""The datasets benchmarks/streams.py times: items made at a cost in CPU or sleep, as
generators for from_generator, as plain IterableDatasets, and map-style."""

import time
from collections.abc import Iterator

from torch.utils.data import Dataset, IterableDataset, get_worker_info

from loopline import current_shard


def item(i: int, rounds: int = 0, sleep: float = 0.0) -> int:
    """Item i (its own id), made at a cost: `sleep` seconds idle, `rounds` of arithmetic."""
    if sleep:
        time.sleep(sleep)
    acc = i
    for _ in range(rounds):
        acc = (acc * 1103515245 + 12345) & 0x7FFFFFFF
    return i


def items(n: int, rounds: int, sleep: float, index: int = 0, count: int = 1) -> Iterator[int]:
    """Every `count`-th item from `index` on; for from_generator(sharded=False) all of them."""
    return (item(i, rounds, sleep) for i in range(index, n, count))


def own_items(n: int, rounds: int, sleep: float) -> Iterator[int]:
    """For from_generator(sharded=True): makes only the items of current_shard()."""
    shard = current_shard()
    return items(n, rounds, sleep, shard.index, shard.count)


def own_items_from_start(n: int, rounds: int, sleep: float) -> Iterator[int]:
    """For from_generator(sharded=True, seekable=True): the items of current_shard() after
    the first current_shard().start of them, the ones made before are not made again."""
    shard = current_shard()
    return items(n, rounds, sleep, shard.index + shard.start * shard.count, shard.count)


class Items(IterableDataset):
    """Plain PyTorch: hand-sharded with get_worker_info, or naive (every worker, every item)."""

    def __init__(self, n: int, rounds: int, sleep: float, naive: bool = False) -> None:
        self.n, self.rounds, self.sleep, self.naive = n, rounds, sleep, naive

    def __iter__(self) -> Iterator[int]:
        info = get_worker_info()
        index, count = (info.id, info.num_workers) if info and not self.naive else (0, 1)
        return items(self.n, self.rounds, self.sleep, index, count)


class SlowItems(Dataset):
    """Map-style: item i sleeps `sleep` seconds and is i."""

    def __init__(self, n: int, sleep: float) -> None:
        self.n, self.sleep = n, sleep

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        return item(index, sleep=self.sleep)
