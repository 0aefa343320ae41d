"""Endless runs stay bounded: shards of unequal size do not make `forever` keep batches.

With two workers and an odd number of items, one worker's shard has a batch more per
epoch; the other used to run ahead into later epochs, and `forever` kept its batches,
one more every epoch, each holding a shared-memory file descriptor, until the run died
with "Too many open files" (issue 12, item 1).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from torch.utils.data import DataLoader

import loopline
from utils import count_up


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def lopsided(n_first: int, n_rest: int):
    """Shard 0 holds n_first items, every other shard n_rest (a sharded generator)."""
    shard = loopline.current_shard()
    size = n_first if shard.index == 0 else n_rest
    yield from (shard.index * 10_000 + i for i in range(size))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds in /proc")
def test_unequal_shards_keep_open_fds_flat_over_many_epochs():
    loader = DataLoader(loopline.from_generator(count_up, 21), batch_size=1, num_workers=2)
    fds = {}
    with loopline.forever(loader) as stream:  # endless: a last epoch would bound the lead
        for _ in stream:
            if stream.epoch in (20, 149):
                fds.setdefault(stream.epoch, open_fds())
            if stream.epoch == 150:
                break
    assert fds[149] - fds[20] <= 3, fds  # the leak grew by one every epoch: 129 here


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds in /proc")
def test_a_shard_100_times_longer_than_the_other_stays_exact_and_bounded():
    dataset = loopline.from_generator(lopsided, 1000, 10, sharded=True)
    loader = DataLoader(dataset, batch_size=10, num_workers=2)
    per_epoch: dict[int, Counter] = {}
    fds = {}
    with loopline.forever(loader) as stream:
        for batch in stream:
            if stream.epoch == 12:
                break
            per_epoch.setdefault(stream.epoch, Counter()).update(batch.tolist())
            if stream.epoch in (2, 11):
                fds.setdefault(stream.epoch, open_fds())
    expected = Counter([*range(1000), *range(10_000, 10_010)])
    assert all(seen == expected for seen in per_epoch.values())
    assert sorted(per_epoch) == list(range(12))
    assert fds[11] - fds[2] <= 3, fds  # the leak kept 99 more batches every epoch


def test_a_worker_with_an_empty_shard_does_not_stall_the_others():
    dataset = loopline.from_generator(lopsided, 7, 0, sharded=True)
    loader = DataLoader(dataset, batch_size=2, num_workers=3)
    with loopline.forever(loader, epochs=4) as stream:
        epochs = [(stream.epoch, batch.tolist()) for batch in stream]
    assert epochs == [(e, b) for e in range(4) for b in ([0, 1], [2, 3], [4, 5], [6])]


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds in /proc")
def test_ten_thousand_epochs_of_unequal_shards_keep_fds_and_memory_flat():
    # Shards of 2 and 1 items: the leak kept one batch (and its fd) more every epoch.
    loader = DataLoader(loopline.from_generator(count_up, 3), batch_size=1, num_workers=2)
    seen = {}
    with loopline.forever(loader) as stream:
        for _ in stream:
            if stream.epoch in (100, 9_999) and stream.epoch not in seen:
                seen[stream.epoch] = (open_fds(), resident_mib())
            if stream.epoch == 10_000:
                break
    (fds_before, rss_before), (fds_after, rss_after) = seen[100], seen[9_999]
    assert fds_after - fds_before <= 3, seen
    assert rss_after - rss_before < 20, seen  # MiB
