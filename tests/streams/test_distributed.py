"""loopline under real torch.distributed: two rank processes on the gloo backend.

Two rank processes are started with the "spawn" method (tests/_dist_workers.py holds
their code) and kept for the module; each test asks them to run one scenario in a fresh
process group, which rendezvouses through a TCPStore this process hosts. Each rank writes
its outcome to a JSON file in the test's tmp_path, which the test reads. Every wait is
bounded: the process groups time out, and ranks that do not answer in time are killed
and the test fails. After any error the ranks are replaced by fresh ones, so a broken
collective cannot leak into the next test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from itertools import chain
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

import _dist_workers
import loopline

WORLD_SIZE = 2
GROUP_TIMEOUT_S = 60  # torch.distributed timeout of every collective
ANSWER_TIMEOUT_S = 90  # how long a test waits for both ranks before killing them


class Ranks:
    """Two rank processes that run scenarios of tests/_dist_workers.py on request."""

    def __init__(self) -> None:
        self.processes: list[Any] = []
        self.queues: list[Any] = []
        self.store: Any = None
        self.commands = 0

    def start(self) -> None:
        # Port 0: the OS picks a free port, so parallel runs never collide.
        self.store = dist.TCPStore(
            "127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=60)
        )
        context = mp.get_context("spawn")
        self.queues = [context.Queue() for _ in range(WORLD_SIZE)]
        self.processes = [
            context.Process(
                target=_dist_workers.serve,
                args=(rank, WORLD_SIZE, self.store.port, queue),
                name=f"rank{rank}",
            )
            for rank, queue in enumerate(self.queues)
        ]
        for process in self.processes:
            process.start()

    def alive(self) -> bool:
        return bool(self.processes) and all(process.is_alive() for process in self.processes)

    def stop(self, grace_s: float = 10) -> None:
        """Ask the ranks to exit; kill any that has not after `grace_s` seconds."""
        for queue, process in zip(self.queues, self.processes, strict=True):
            if process.is_alive():
                queue.put(None)
        for process in self.processes:
            process.join(grace_s)
            if process.is_alive():
                process.kill()
                process.join(10)
        for queue in self.queues:
            queue.close()
            queue.cancel_join_thread()
        self.processes, self.queues, self.store = [], [], None

    def run(
        self,
        scenario: str,
        out_dir: Path,
        *,
        timeout_s: float = GROUP_TIMEOUT_S,
        breaks_group: bool = False,
        **params: Any,
    ) -> list[Any]:
        """Run `scenario` on both ranks; the result of each rank, rank 0 first.

        Fails the test (after killing the ranks) when a rank does not answer within
        ANSWER_TIMEOUT_S, and shows the traceback of every rank that raised. Ranks are
        replaced after an error, or after a scenario that `breaks_group` on purpose.
        """
        if not self.alive():
            self.stop(grace_s=0)
            self.start()
        self.commands += 1
        name = f"{scenario}-{self.commands}"
        outs = [out_dir / f"{name}-rank{rank}.json" for rank in range(WORLD_SIZE)]
        for queue, out in zip(self.queues, outs, strict=True):
            queue.put((name, scenario, params, str(out), timeout_s))
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while not all(out.exists() for out in outs):
            dead = [process.name for process in self.processes if not process.is_alive()]
            if dead or time.monotonic() > deadline:
                self.stop(grace_s=0)
                why = f"{dead} died" if dead else f"no answer in {ANSWER_TIMEOUT_S} s (a hang?)"
                pytest.fail(f"scenario {scenario!r} {params}: {why}; ranks killed")
            time.sleep(0.02)
        outcomes = [json.loads(out.read_text()) for out in outs]
        errors = [
            f"--- rank {rank} raised:\n{outcome['error']}"
            for rank, outcome in enumerate(outcomes)
            if "error" in outcome
        ]
        if errors or breaks_group:
            self.stop()
        if errors:
            pytest.fail(f"scenario {scenario!r} {params} failed\n" + "\n".join(errors))
        return [outcome["result"] for outcome in outcomes]


@pytest.fixture(scope="module")
def ranks() -> Iterator[Ranks]:
    group = Ranks()
    try:
        yield group
    finally:
        group.stop()


def flatten(batches: list[list[int]]) -> list[int]:
    return list(chain.from_iterable(batches))


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


# ---------------------------------------------------------------- even


EVEN_CASES = [
    pytest.param("generator", 0, id="generator-main-process"),
    pytest.param("generator", 2, id="generator-two-workers"),
    pytest.param("map", 0, id="map-main-process"),
    pytest.param("map", 2, id="map-two-workers"),
]


@pytest.mark.parametrize(("style", "num_workers"), EVEN_CASES)
def test_even_gives_every_rank_the_same_number_of_steps(
    ranks: Ranks, tmp_path: Path, style: str, num_workers: int
) -> None:
    epochs = 3
    results = ranks.run(
        "even",
        tmp_path,
        style=style,
        num_workers=num_workers,
        batches_per_rank=[5, 3],
        batch_size=2,
        epochs=epochs,
    )
    # Reaching here means no rank hung in an all-reduce the other never joined.
    assert [len(result["alone"]) for result in results] == [5, 3]  # really uneven
    for rank, result in enumerate(results):
        shortest = result["alone"][:3]
        assert result["even"] == shortest, f"rank {rank}"
        assert result["even_syncs"] == [2.0] * 3, f"rank {rank}"
        assert [epoch for epoch, _ in result["forever"]] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        assert [batch for _, batch in result["forever"]] == shortest * epochs, f"rank {rank}"
        assert result["forever_syncs"] == [2.0] * 9, f"rank {rank}"


def test_without_even_the_rank_with_more_batches_blocks_in_an_all_reduce_no_one_joins(
    ranks: Ranks, tmp_path: Path
) -> None:
    # What even() prevents: rank 1 finishes its 3 batches and leaves; rank 0's 4th
    # all-reduce has no partner. It fails at once here because rank 1 then destroys its
    # process group (a live DDP rank 1 would leave rank 0 hanging); the short group
    # timeout bounds it otherwise.
    results = ranks.run(
        "without_even",
        tmp_path,
        timeout_s=10,
        breaks_group=True,
        style="generator",
        num_workers=0,
        batches_per_rank=[5, 3],
        batch_size=2,
    )
    assert results[1] == {"synced": 3, "error": None}
    assert results[0]["synced"] == 3
    assert results[0]["error"] is not None


# ---------------------------------------------------------------- forever resume


RESUME_CASES = [
    pytest.param("map", 0, False, id="map-main-process"),
    pytest.param("map", 2, False, id="map-two-workers"),
    pytest.param("generator", 0, False, id="generator-main-process"),
    pytest.param("generator", 2, False, id="generator-two-workers"),
    pytest.param("generator", 2, True, id="even-generator-two-workers"),
    pytest.param("map", 2, True, id="even-map-two-workers"),
]


@pytest.mark.parametrize(("style", "num_workers", "even"), RESUME_CASES)
def test_forever_resumes_exactly_under_distributed(
    ranks: Ranks, tmp_path: Path, style: str, num_workers: int, even: bool
) -> None:
    n, batch_size = 23, 3  # 12 and 11 samples: 4 batches per rank and epoch
    per_epoch = 3 if even else 4  # even: rank 0 has 5 batches, rank 1 has 3
    total = 2 * per_epoch + 2
    cuts = [1, per_epoch, per_epoch + 2]  # inside the first epoch, at its end, inside the next
    results = ranks.run(
        "resume",
        tmp_path,
        style=style,
        num_workers=num_workers,
        even=even,
        n=n,
        batch_size=batch_size,
        seed=7,
        total=total,
        cuts=cuts,
    )
    for rank, result in enumerate(results):
        reference = result["reference"]
        epochs = [epoch for epoch, _ in reference]
        assert epochs == [0] * per_epoch + [1] * per_epoch + [2, 2], f"rank {rank}"
        for cut in cuts:
            resumed = result["resumed"][str(cut)]
            assert resumed["head"] + resumed["tail"] == reference, f"rank {rank}, cut {cut}"
            assert resumed["step"] == total
    if not even:
        # Within an epoch the ranks' samples are disjoint and together are all of them.
        for epoch in (0, 1):
            seen = [
                flatten([batch for e, batch in result["reference"] if e == epoch])
                for result in results
            ]
            assert sorted(seen[0] + seen[1]) == list(range(n)), f"epoch {epoch}"
