"""Benchmarks of loopline's streams at scale: resized resumes, randomness, long runs.

Run ``python benchmarks/elastic.py`` (about 2 minutes) or ``--quick`` (about 20 s). Tables
are printed and written to ``benchmarks/out/elastic.md``.

1. Elastic resume: a job saved 40% into an epoch and resumed under another worker count,
   world size (ranks simulated in this process) or batch size. The time from building the
   new loader and loading the state to its first batch, against a fresh start of the same
   loader; then every rank of the new job runs to the end of the epoch, and the samples
   missing or repeated across both jobs are counted. torchdata's ``StatefulDataLoader``
   (over a ``DistributedSampler``, each new rank loading the state of old rank
   ``rank % old_world_size``, the only state it has) is put through the same changes.
2. The cost of reproducible randomness (``forever(reseed=...)``): microseconds per sample
   of seeding the global RNGs, and of a whole epoch of cheap samples against reseed=False.
3. Open file descriptors and resident memory over 10,000 epochs (1,000 with --quick) of
   the unequal-shard case that used to leak: 21 items on 2 workers, batch size 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import timeit
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _report import publish, settings, table
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

import loopline
from loopline.streams import shard as shard_module
from loopline.streams._rng import Reseeder

try:
    from torchdata.stateful_dataloader import StatefulDataLoader
except ImportError:
    StatefulDataLoader = None

OUT = Path(__file__).resolve().parent / "out" / "elastic.md"
SIZE, SAVED_AT = 4000, 0.4


def count_up(n: int):
    yield from range(n)


def as_rank(rank: int, world_size: int) -> None:
    """The place a generator stream sees without torch.distributed (simulated ranks)."""
    shard_module._inherited[:] = [(rank, world_size)]


def map_loader(rank: int, world: int, batch: int, workers: int) -> DataLoader:
    sampler = loopline.EpochSampler(SIZE, seed=1, rank=rank, world_size=world)
    return DataLoader(list(range(SIZE)), batch_size=batch, sampler=sampler, num_workers=workers)


def generator_loader(rank: int, world: int, batch: int, workers: int) -> DataLoader:
    as_rank(rank, world)
    return DataLoader(
        loopline.from_generator(count_up, SIZE), batch_size=batch, num_workers=workers
    )


def loopline_case(make: Callable[..., DataLoader], before: tuple, after: tuple) -> list[Any]:
    """(resume ms, fresh ms, missing, repeated) for one topology change (world, batch, workers)."""
    world, batch, workers = before
    seen: list[int] = []
    states = []
    for rank in range(world):
        stream = loopline.forever(make(rank, world, batch, workers), epochs=1)
        steps = int(SAVED_AT * SIZE / world / batch)
        seen += [i for _, b in zip(range(steps), stream, strict=False) for i in b.tolist()]
        states.append(stream.state_dict())
        stream.close()
    job = loopline.merge_states(states)
    world, batch, workers = after
    took = {}
    for name, state in (("fresh", None), ("resume", job)):
        started = time.perf_counter()
        stream = loopline.forever(make(0, world, batch, workers), epochs=1)
        if state is not None:
            stream.load_state_dict(state)
        next(stream)
        took[name] = (time.perf_counter() - started) * 1e3
        stream.close()
    for rank in range(world):
        stream = loopline.forever(make(rank, world, batch, workers), epochs=1)
        stream.load_state_dict(job)
        seen += [i for b in stream for i in b.tolist()]
    counts = Counter(seen)
    return [took["resume"], took["fresh"], SIZE - len(counts), sum(n - 1 for n in counts.values())]


def stateful_case(before: tuple, after: tuple) -> str:
    """What StatefulDataLoader gives for the same change: counts, or the error it raises."""
    if StatefulDataLoader is None:
        return "torchdata not installed"

    def make(rank: int, world: int, batch: int, workers: int) -> Any:
        sampler = DistributedSampler(range(SIZE), num_replicas=world, rank=rank, seed=1)
        return StatefulDataLoader(
            list(range(SIZE)), batch_size=batch, sampler=sampler, num_workers=workers
        )

    world, batch, workers = before
    seen, states = [], []
    for rank in range(world):
        loader = make(rank, world, batch, workers)
        batches = iter(loader)
        steps = int(SAVED_AT * SIZE / world / batch)
        seen += [i for _, b in zip(range(steps), batches, strict=False) for i in b.tolist()]
        states.append(loader.state_dict())
        del batches
    new_world, batch, workers = after
    try:
        for rank in range(new_world):
            loader = make(rank, new_world, batch, workers)
            loader.load_state_dict(states[rank % world])
            seen += [i for b in loader for i in b.tolist()]
    except Exception as error:  # what a user of it would meet
        return f"raises {type(error).__name__} {str(error)[:60]!r}".replace("''", "(no message)")
    counts = Counter(seen)
    missing, repeated = SIZE - len(counts), sum(n - 1 for n in counts.values())
    return f"{missing} missing, {repeated} repeated" + ("" if missing or repeated else " (exact)")


def figure_elastic(quick: bool) -> str:
    cases = [
        ("workers 2 -> 3 (generator)", generator_loader, (1, 16, 2), (1, 16, 3)),
        ("world size 2 -> 4 (map-style)", map_loader, (2, 16, 0), (4, 16, 0)),
        ("world size 4 -> 3 (generator)", generator_loader, (4, 16, 0), (3, 16, 0)),
        ("batch size 16 -> 32 (map-style)", map_loader, (1, 16, 0), (1, 32, 0)),
        ("batch size 16 -> 8 (generator)", generator_loader, (1, 16, 0), (1, 8, 0)),
    ]
    rows = []
    for name, make, before, after in cases[:3] if quick else cases:
        resume, fresh, missing, repeated = loopline_case(make, before, after)
        peer = stateful_case(before, after) if make is map_loader or before[2] else "n/a"
        rows.append([name, f"{resume:.1f}", f"{fresh:.1f}", f"{missing} / {repeated}", peer])
    as_rank(0, 1)
    return "### Elastic resume, saved 40% into an epoch of 4,000 samples\n\n" + table(
        [
            "change",
            "loopline resume to first batch (ms)",
            "fresh start (ms)",
            "loopline missing / repeated",
            "StatefulDataLoader",
        ],
        rows,
    )


def figure_randomness(quick: bool) -> str:
    rows = []
    for names in (("torch",), ("torch", "numpy"), ("torch", "numpy", "random")):
        reseeder = Reseeder(names, 1)
        calls = 50_000 if quick else 200_000
        seconds = min(timeit.repeat(lambda r=reseeder: r(1, 12345), number=calls, repeat=3))
        rows.append([", ".join(names), f"{seconds / calls * 1e6:.2f}"])
    data = list(range(20_000))

    def epoch(reseed: Any) -> float:
        sampler = loopline.EpochSampler(data, seed=0)
        stream = loopline.forever(
            DataLoader(data, batch_size=32, sampler=sampler), epochs=1, reseed=reseed
        )
        started = time.perf_counter()
        for _ in stream:
            pass
        return time.perf_counter() - started

    times = {reseed: [] for reseed in (False, True)}
    for _ in range(3 if quick else 7):
        for reseed in times:
            times[reseed].append(epoch(reseed))
    extra = (statistics.median(times[True]) - statistics.median(times[False])) / len(data) * 1e6
    return (
        "### Reproducible randomness\n\n"
        + table(["RNGs seeded per sample", "us per sample"], rows)
        + f"\n\nA whole epoch of 20,000 cheap map-style samples, 0 workers, batch 32: "
        f"{extra:.1f} us a sample more with reseed=True (all three RNGs, the caller's kept "
        "per batch) than with reseed=False."
    )


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def figure_long_run(quick: bool) -> str:
    epochs = 1_000 if quick else 10_000
    loader = DataLoader(loopline.from_generator(count_up, 21), batch_size=1, num_workers=2)
    stream = loopline.forever(loader, epochs=epochs)
    marks = {0, epochs // 10, epochs // 2, epochs - 1}
    rows, started = [], time.perf_counter()
    for _ in stream:
        if stream.epoch in marks:
            marks.discard(stream.epoch)
            rows.append([f"{stream.epoch:,}", open_fds(), f"{resident_mb():.0f}"])
    stream.close()
    took = time.perf_counter() - started
    return (
        f"### {epochs:,} epochs of unequal shards (11 and 10 items on 2 workers)\n\n"
        + table(["epoch", "open fds", "resident MB"], rows)
        + f"\n\n{epochs * 21:,} batches in {took:.0f} s; it used to leak one fd per epoch."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~20 s smoke run, noisier")
    quick = parser.parse_args().quick
    torch.set_num_threads(1)
    started = time.perf_counter()
    sections = [settings(quick)]
    for figure in (figure_elastic, figure_randomness, figure_long_run):
        sections.append(figure(quick))
        print(sections[-1] + "\n", flush=True)
    publish("Streams at scale (benchmarks/elastic.py)", sections, OUT, started)


if __name__ == "__main__":
    main()
