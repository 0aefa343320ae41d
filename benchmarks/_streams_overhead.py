"""Figure 2 of benchmarks/streams.py: the per-batch overhead of forever against a plain
for-epoch loop and a torchdata.nodes pipeline, with 0 workers (lock-step) and with 2."""

import itertools
import time
from collections.abc import Callable, Iterator
from functools import partial
from statistics import median
from typing import Any

import torch
from _streams_common import (
    collected,
    interleaved,
    loader,
    nodes_loader,
    plain_epochs,
    section,
    tn,
    waits,
)
from torch.utils.data import TensorDataset

from loopline import forever


def same(a: Any, b: Any) -> bool:
    """Whether two batches (lists of tensors, or None for the end) are equal."""
    if a is None or b is None:
        return a is b
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def lockstep(streams: list[Iterator[Any]]) -> tuple[list[float], int]:
    """Seconds inside each stream's next() and the batch count. The streams go batch by batch
    side by side, each first in turn, to see the same machine speed; their batches must agree."""
    spent = [0.0] * len(streams)
    for batches in itertools.count():
        got: list[Any] = [None] * len(streams)
        turn = batches % len(streams)
        for k in [*range(turn, len(streams)), *range(turn)]:
            start = time.perf_counter()
            got[k] = next(streams[k], None)
            spent[k] += time.perf_counter() - start
        if not all(same(got[0], other) for other in got[1:]):
            raise RuntimeError(f"figure 2: the loops gave different batches at batch {batches}")
        if got[0] is None:
            return spent, batches


def tensors(n: int) -> TensorDataset:
    return TensorDataset(torch.randn(n, 16), torch.randint(0, 10, (n,)))


LOOP, ENDLESS, NODES = (
    "plain for-epoch loop",
    "loopline forever(loader, epochs=N)",
    "torchdata.nodes Loader, for-epoch loop",
)


def single_process_rows(n: int, epochs: int, rounds: int) -> list[str]:
    """Figure 2's 0-worker rows: the loops in lock-step over `n` items, `rounds` times."""
    makers: dict[str, Callable[[TensorDataset], Iterator[Any]]] = {
        LOOP: lambda data: plain_epochs(loader(data, 64), epochs),
        ENDLESS: lambda data: forever(loader(data, 64), epochs=epochs),
    }
    if tn:
        makers[NODES] = lambda data: plain_epochs(nodes_loader(data, 64), epochs)
    lockstep([make(warm) for warm in [tensors(2000)] for make in makers.values()])  # warm-up
    dataset = tensors(n)
    spent = [lockstep([make(dataset) for make in makers.values()]) for _ in range(rounds)]
    count, rows = spent[0][1], []
    for k, name in enumerate(makers):
        ratio = median([times[k] / times[0] for times, _ in spent])
        per_batch = median(times[k] for times, _ in spent) / count * 1e6
        rows.append(f"0 | {name} | {count} | {per_batch:.1f} | {ratio - 1:+.2%}")
    return rows if tn else [*rows, f"0 | {NODES} | n/a | n/a | not installed"]


def worker_rows(n: int, epochs: int, repeats: int) -> list[str]:
    """Figure 2's 2-worker rows: whole runs over `n` items, interleaved `repeats` times."""
    # Lock-step would make 4 workers share 2 cores: whole runs instead. Each run starts its
    # workers, and the plain loop without persistent workers (like torchdata.nodes) every epoch.
    data = tensors(n)
    two = partial(loader, data, 64, 2)
    kept = partial(two, persistent_workers=True)
    variants = {
        LOOP: lambda: waits(plain_epochs(two(), epochs)),
        "plain loop, persistent_workers=True": lambda: waits(plain_epochs(kept(), epochs)),
        ENDLESS: lambda: waits(forever(two(), epochs=epochs)),
    }
    if tn:
        nodes = partial(nodes_loader, data, 64, 2)
        variants[NODES] = lambda: collected(waits(plain_epochs(nodes(), epochs)))
    runs = interleaved(variants, repeats)
    counts = {len(run) for results in runs.values() for run in results}
    if len(counts) != 1:
        raise RuntimeError(f"figure 2: the loops gave different batch counts: {counts}")
    rows = []
    for name, results in runs.items():
        ratio = median([sum(t) / sum(p) for t, p in zip(results, runs[LOOP], strict=True)])
        count = len(results[0]) - 1  # the last wait is for the end
        per_batch = median(sum(run) for run in results) / count * 1e6
        rows.append(f"2 | {name} | {count} | {per_batch:.1f} | {ratio - 1:+.1%}")
    return rows if tn else [*rows, f"2 | {NODES} | n/a | n/a | not installed"]


def figure_overhead(quick: bool) -> str:
    n0, n2, epochs = (20_000, 5_000, 2) if quick else (100_000, 10_000, 3)
    rounds, repeats = (1, 3) if quick else (3, 7)
    rows = single_process_rows(n0, epochs, rounds) + worker_rows(n2, epochs, repeats)
    return section(
        "2. Per-batch overhead of forever",
        f"TensorDataset of 16 floats and a label, batch size 64, {epochs} epochs; {n0:,} items "
        f"with 0 workers (lock-step, median of {rounds} rounds; the loops' batches are checked "
        f"equal), {n2:,} with 2 (whole runs, median of {repeats} rounds, good to about 10%). "
        "torchdata.nodes: the DataLoader of its migration guide (SamplerWrapper, Batcher of "
        "indices, Mapper or with 2 workers ParallelMapper(method='process') fetching and "
        "collating each batch, Prefetcher) in a Loader iterated once per epoch; like the plain "
        "loop it starts its workers every epoch (it has no persistent workers).",
        "workers | loop | batches | time per batch (us) | overhead vs plain loop",
        rows,
    )
