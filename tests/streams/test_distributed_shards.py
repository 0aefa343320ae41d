"""Sharding under real torch.distributed: from_generator and EpochSampler give each of two
rank processes (tests/_dist_ranks.py) its own part, every sample once."""

from __future__ import annotations

from pathlib import Path

import pytest

import loopline
from _dist_ranks import WORLD_SIZE, Ranks, flatten

# ---------------------------------------------------------------- from_generator


@pytest.mark.parametrize(
    ("num_workers", "context", "sharded"),
    [
        pytest.param(0, None, False, id="main-process"),
        pytest.param(0, None, True, id="main-process-sharded"),
        pytest.param(2, "fork", False, id="two-forked-workers"),
        pytest.param(2, "fork", True, id="two-forked-workers-sharded"),
        # "spawn" is also the default start method inside a rank that
        # torch.multiprocessing.spawn started (and everywhere on macOS and Windows).
        pytest.param(2, "spawn", False, id="two-spawned-workers"),
        pytest.param(2, "spawn", True, id="two-spawned-workers-sharded"),
    ],
)
def test_two_ranks_with_two_workers_each_yield_every_sample_once(
    ranks: Ranks, tmp_path: Path, num_workers: int, context: str | None, sharded: bool
) -> None:
    n, batch_size = 101, 4
    results = ranks.run(
        "shards",
        tmp_path,
        n=n,
        batch_size=batch_size,
        num_workers=num_workers,
        context=context,
        sharded=sharded,
    )
    per_rank = [flatten(result["batches"]) for result in results]
    assert sorted(per_rank[0] + per_rank[1]) == list(range(n))  # all, each once
    for rank, result in enumerate(results):
        assert all(1 <= len(batch) <= batch_size for batch in result["batches"])
        # current_shard() in the rank's main process: shard `rank` of 2.
        assert result["shard"] == [rank, WORLD_SIZE, rank, WORLD_SIZE]
        # Shards are numbered rank-major: this rank's workers own the neighbouring
        # shard indices [rank * W, (rank + 1) * W).
        workers = max(1, num_workers)
        count = WORLD_SIZE * workers
        own = range(rank * workers, (rank + 1) * workers)
        assert all(item % count in own for item in per_rank[rank])


# ---------------------------------------------------------------- EpochSampler


def test_epoch_sampler_gives_ranks_disjoint_shards_of_one_permutation(
    ranks: Ranks, tmp_path: Path
) -> None:
    n, seed, epochs = 11, 5, 3
    results = ranks.run("sampler", tmp_path, n=n, seed=seed, epochs=epochs)
    assert [result["len"] for result in results] == [6, 5]
    permutations = []
    for epoch in range(epochs):
        first, second = (result["orders"][epoch] for result in results)
        assert (len(first), len(second)) == (6, 5)
        assert not set(first) & set(second)
        assert sorted(first + second) == list(range(n))
        # Rank r holds order[r::2] of one permutation shared by both ranks, the one any
        # process computes from (seed, epoch).
        whole = [None] * n
        whole[0::2], whole[1::2] = first, second
        assert whole == loopline.EpochSampler(n, seed=seed).order(epoch).tolist()
        permutations.append(whole)
    assert len({tuple(order) for order in permutations}) == epochs  # a new order each epoch
    for result in results:
        assert result["again"] == result["orders"]  # reproducible with a fresh sampler
