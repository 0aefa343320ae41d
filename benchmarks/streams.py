"""Benchmarks of loopline's streams, each side by side with plain PyTorch.

Run ``python benchmarks/streams.py`` (2-3 minutes) or ``--quick`` (30 s, noisier); the tables
are printed and written to ``benchmarks/out/streams.md``.

1. ``from_generator`` throughput with 0, 1 and 2 persistent workers on a CPU-bound generator
   (300 us of arithmetic per sample), against a naive ``IterableDataset`` (every worker yields
   every sample: duplicates are counted) and a hand-sharded one; after a warm-up epoch.
2. Per-batch overhead of ``forever(loader, epochs=N)`` against ``for epoch: for batch in
   loader``. With 0 workers both advance side by side, batch by batch, summing the time
   inside each one's ``next()``; with 2 workers whole runs are timed.
3. Epoch-boundary stall on 2 workers whose items sleep 2 ms (like I/O), for the four loops
   (a)-(d) of the table: the wait for the first batch of a later epoch over the mean wait
   inside one (both workers finish together, so waits alternate between ~0 and a batch's
   load time, which makes medians unstable).
4. Resume mid-epoch: from building a loader and restoring a state saved at 10%, 50% or 90%
   of an epoch to holding the first batch, against the plain way (load and discard the
   batches before the position) and torchdata's ``StatefulDataLoader`` when installed. Each
   resumed first batch is checked against an uninterrupted run.

Compared variants run in turn, the order reversed every other round, so that drift in this
shared machine's speed hits all alike; each figure is a median after a warm-up. One intra-op
thread per process (PyTorch sets it in workers), so that processes do not fight over cores.
"""

import argparse
import itertools
import logging
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from importlib.metadata import version
from pathlib import Path
from statistics import fmean, median
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset, get_worker_info

from loopline import EpochSampler, current_shard, forever, from_generator

try:
    from torchdata.stateful_dataloader import StatefulDataLoader
except ImportError:
    StatefulDataLoader = None

OUT = Path(__file__).resolve().parent / "out" / "streams.md"


def loader(dataset: Any, batch: int, workers: int = 0, cls: Any = DataLoader, **kw: Any) -> Any:
    return cls(dataset, batch_size=batch, num_workers=workers, **kw)


def interleaved(variants: dict[Any, Callable], rounds: int, warmup: bool = True) -> dict:
    """Each variant's results over `rounds` rounds that run all in turn, every other reversed."""
    for run in variants.values() if warmup else ():
        run()
    results: dict[Any, list[Any]] = {name: [] for name in variants}
    for r in range(rounds):
        for name in list(variants) if r % 2 == 0 else list(variants)[::-1]:
            results[name].append(variants[name]())
    return results


def waits(batches: Iterable[Any]) -> list[float]:
    """Seconds from asking for each batch to getting it, the first wait counting iter() and
    the last one the wait for the end (where a DataLoader stops its workers)."""
    start, it, out = time.perf_counter(), iter(batches), []
    while True:
        batch = next(it, None)
        out.append(time.perf_counter() - start)
        if batch is None:
            return out
        start = time.perf_counter()


def section(title: str, note: str, headers: str, rows: list[str]) -> str:
    """A Markdown section whose table has its headers and each row's cells split by ' | '."""
    lines = [headers, " | ".join(["---"] * len(headers.split(" | "))), *rows]
    return f"## {title}\n\n{note}\n\n" + "\n".join(f"| {line} |" for line in lines)


def machine() -> str:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    cpu = next((ln.split(":")[1].strip() for ln in lines if "model name" in ln), platform.machine())
    return (
        f"Machine: {cpu}, {len(os.sched_getaffinity(0))} usable cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}, loopline {version('loopline')}, "
        f"torchdata {version('torchdata') if StatefulDataLoader else 'not installed'}, "
        f"{torch.multiprocessing.get_start_method()} start, load {os.getloadavg()[0]:.2f}."
    )


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


# -------------------------------------------------------- figure 1: generator throughput
def figure_generator(quick: bool) -> str:
    n, repeats = (240, 2) if quick else (800, 5)
    # Rounds of arithmetic that take about 300 us (best of 5 trials, against background load).
    per_round = min(sum(waits(item(i, 1000) for i in range(20))) for _ in range(5)) / 20_000
    rounds = round(300e-6 / per_round)
    hand = "plain IterableDataset, hand-sharded"
    datasets = {
        "plain IterableDataset, naive": Items(n, rounds, 0.0, naive=True),
        hand: Items(n, rounds, 0.0),
        "from_generator, sharded=False": from_generator(items, n, rounds, 0.0),
        "from_generator, sharded=True": from_generator(own_items, n, rounds, 0.0, sharded=True),
    }
    # Batches stay lists, so that PyTorch's cost of sharing tensors does not dominate. All
    # loaders stay alive (idle persistent workers cost nothing) so each round times them all.
    loaders = {
        (name, w): loader(data, 16, w, collate_fn=list, persistent_workers=w > 0)
        for name, data in datasets.items()
        for w in (0, 1, 2)
    }
    # The warm-up epoch starts the workers and tells the samples each loader delivers.
    ids = {key: [i for batch in batches for i in batch] for key, batches in loaders.items()}
    distinct = {key: len(set(samples)) for key, samples in ids.items()}
    runs = interleaved({k: partial(waits, v) for k, v in loaders.items()}, repeats, warmup=False)

    def speedup(a: tuple[str, int], b: tuple[str, int]) -> str:
        """Median over rounds of a's distinct samples per second over b's."""
        pairs = zip(runs[a], runs[b], strict=True)
        ratios = [distinct[a] * sum(tb) / (distinct[b] * sum(ta)) for ta, tb in pairs]
        return f"{median(ratios):.2f}x"

    rows = []
    for (name, w), results in runs.items():
        epoch, key = median(sum(run) for run in results), (name, w)
        rows.append(
            f"{name} | {w} | {epoch * 1e3:.0f} | {len(ids[key]) - distinct[key]} | "
            f"{distinct[key] / epoch:,.0f} | {speedup(key, (name, 0))} | {speedup(key, (hand, w))}"
        )
    return section(
        "1. from_generator throughput (CPU-bound generator)",
        f"{n} samples of about 300 us per epoch, batch size 16, median of {repeats} rounds.",
        "dataset | workers | epoch (ms) | duplicates | distinct/s | speed-up vs 0 workers"
        " | vs hand-sharded",
        rows,
    )


# ------------------------------------------------------------ figure 2: forever overhead
def plain_epochs(batches: Iterable[Any], epochs: int) -> Iterator[Any]:
    for _ in range(epochs):
        yield from batches


def lockstep(dataset: TensorDataset, epochs: int) -> tuple[float, float, int]:
    """Seconds inside next() of a plain loop and of forever, and the batch count; the two go
    batch by batch side by side (alternating which goes first) to see the same machine speed."""
    ours = forever(loader(dataset, 64), epochs=epochs)
    streams, spent = [plain_epochs(loader(dataset, 64), epochs), ours], [0.0, 0.0]
    for batches in itertools.count():
        ended = []
        for k in (0, 1) if batches % 2 == 0 else (1, 0):
            start = time.perf_counter()
            ended.append(next(streams[k], None) is None)
            spent[k] += time.perf_counter() - start
        if any(ended):
            if not all(ended):
                raise RuntimeError("figure 2: forever and the plain loop gave different counts")
            return spent[0], spent[1], batches


def tensors(n: int) -> TensorDataset:
    return TensorDataset(torch.randn(n, 16), torch.randint(0, 10, (n,)))


def figure_overhead(quick: bool) -> str:
    n0, n2, epochs = (20_000, 5_000, 2) if quick else (100_000, 10_000, 3)
    loop, endless = "plain for-epoch loop", "loopline forever(loader, epochs=N)"
    rounds, repeats = (1, 3) if quick else (3, 7)
    lockstep(tensors(2000), 2)  # warm-up
    dataset = tensors(n0)
    spent = [lockstep(dataset, epochs) for _ in range(rounds)]
    count, ratio = spent[0][2], median([f / p for p, f, _ in spent])
    plain, ours = (median(r[k] for r in spent) / count * 1e6 for k in (0, 1))
    rows = [f"0 | {loop} | {count} | {plain:.1f} | +0.00%"]
    rows += [f"0 | {endless} | {count} | {ours:.1f} | {ratio - 1:+.2%}"]
    # With 2 workers lock-step would make 4 workers share 2 cores: whole runs instead. Each
    # run starts its workers, and the plain loop without persistent workers every epoch.
    two = partial(loader, tensors(n2), 64, 2)
    kept = partial(two, persistent_workers=True)
    variants = {
        loop: lambda: waits(plain_epochs(two(), epochs)),
        "plain loop, persistent_workers=True": lambda: waits(plain_epochs(kept(), epochs)),
        endless: lambda: waits(forever(two(), epochs=epochs)),
    }
    runs = interleaved(variants, repeats)
    counts = {len(run) for results in runs.values() for run in results}
    if len(counts) != 1:
        raise RuntimeError(f"figure 2: the loops gave different batch counts: {counts}")
    for name, results in runs.items():
        ratio = median([sum(t) / sum(p) for t, p in zip(results, runs[loop], strict=True)])
        count = len(results[0]) - 1  # the last wait is for the end
        per_batch = median(sum(run) for run in results) / count * 1e6
        rows.append(f"2 | {name} | {count} | {per_batch:.1f} | {ratio - 1:+.1%}")
    return section(
        "2. Per-batch overhead of forever",
        f"TensorDataset of 16 floats and a label, batch size 64, {epochs} epochs; {n0:,} items "
        f"with 0 workers (lock-step, median of {rounds} rounds), {n2:,} with 2 (whole runs, "
        f"median of {repeats} rounds, good to about 10%).",
        "workers | loop | batches | time per batch (us) | overhead vs plain loop",
        rows,
    )


# -------------------------------------------------------- figure 3: epoch-boundary stall
def iter_again(batches: Iterable[Any], steps: int) -> Iterator[Any]:
    """(c): the usual step loop that calls iter() again when an epoch runs out."""
    it = iter(batches)
    for _ in range(steps):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(batches)
            batch = next(it)
        yield batch


def figure_stall(quick: bool) -> str:
    batches, epochs, repeats = (21, 4, 1) if quick else (31, 6, 3)
    steps, stall = batches * epochs, partial(loader, SlowItems(batches * 8, 0.002), 8, 2)
    kept = partial(stall, persistent_workers=True)
    variants = {
        "(a) new DataLoader each epoch": lambda: waits(b for _ in range(epochs) for b in stall()),
        "(b) persistent_workers=True": lambda: waits(plain_epochs(kept(), epochs)),
        "(c) catch StopIteration, iter() again": lambda: waits(iter_again(stall(), steps)),
        "(d) loopline forever": lambda: waits(forever(stall(), epochs=epochs)),
    }
    runs = interleaved(variants, repeats)
    rows = []
    for name, results in runs.items():
        if any(len(run) != steps + 1 for run in results):
            raise RuntimeError(f"figure 3: {name} did not give {epochs} epochs of {batches}")
        # Left out: a run's first wait (worker start-up in every variant) and last (the end).
        starts = [w for run in results for w in run[batches:steps:batches]]
        inside = [w for run in results for i, w in enumerate(run[:steps]) if i % batches]
        mean, start, typical = fmean(inside), fmean(starts), median(inside)
        rows.append(
            f"{name} | {mean * 1e3:.1f} | {typical * 1e3:.1f} | {start * 1e3:.1f} | "
            f"{max(starts) * 1e3:.1f} | {start / mean:.2f}x | {median(starts) / typical:.2f}x"
        )
    return section(
        "3. Epoch-boundary stall",
        f"Batch size 8, {batches} batches per epoch (odd, so that epochs start on either "
        f"worker), {epochs} epochs, {repeats} run(s). 'stall ratio': mean epoch-start wait / "
        "mean wait; 'first/median': the same with medians. Goal for (d): below 1.5x.",
        "variant | mean wait (ms) | median wait (ms) | epoch-start wait (ms) | worst epoch "
        "start (ms) | stall ratio | first/median",
        rows,
    )


# ----------------------------------------------------------------- figure 4: resume time
def holder(kind: str, data: Callable[[float], Any], cost: float, workers: int) -> Any:
    """A new loader over `data(cost)` in what holds its position: forever for loopline, a
    StatefulDataLoader for torchdata, a DataLoader for the plain way."""
    dataset = data(cost)
    sampler = EpochSampler(len(dataset), seed=0) if isinstance(dataset, SlowItems) else None
    cls = StatefulDataLoader if kind == "torchdata" else DataLoader
    batches = loader(dataset, 16, workers, cls, sampler=sampler)
    return forever(batches) if kind == "loopline" else batches


def first_batch(kind: str, data: Callable, workers: int, skip: int, state: Any, expected: list):
    """Seconds from building a loader and bringing it to position `skip` (plain: discard the
    batches before it; else restore `state`) to its first batch, and whether it is `expected`."""
    start = time.perf_counter()
    owner = holder(kind, data, 0.001, workers)
    if state is not None:
        owner.load_state_dict(state)
    batches = itertools.islice(iter(owner), skip if kind == "plain" else 0, None)
    batch = next(batches)  # `batches` lives on, so that the workers stop after the clock
    elapsed = time.perf_counter() - start
    if kind == "loopline":
        owner.close()  # stops its workers now, not at garbage collection
    return elapsed, batch.tolist() == expected


def resume_rows(name: str, ours: Callable, plain: Callable, workers: int, repeats: int) -> list:
    """Figure 4's rows for one dataset (made given an item's cost) and worker count."""
    data = {"plain": plain, "loopline": ours, "torchdata": plain}
    kinds = list(data) if StatefulDataLoader else ["plain", "loopline"]
    expected = [b.tolist() for b in holder("plain", plain, 0.0, workers)]
    positions = [0] + [round(f * len(expected)) for f in (0.1, 0.5, 0.9)]
    variants = {}
    for kind, k in itertools.product(kinds, positions):
        state = None
        if k and kind != "plain":  # saved from a cost-free copy: a state holds positions only
            owner = holder(kind, data[kind], 0.0, workers)
            list(itertools.islice(owner, k))  # the holder keeps its iterator
            state = owner.state_dict()
        variants[kind, k] = partial(first_batch, kind, data[kind], workers, k, state, expected[k])
    for kind in kinds:  # warm-up: fresh starts
        variants[kind, 0]()
    runs = interleaved(variants, repeats, warmup=False)
    took = {key: median(t for t, _ in results) for key, results in runs.items()}
    rows = []
    for k in positions:
        ok = "yes" if all(ok for kind in kinds for _, ok in runs[kind, k]) else "NO"
        at = f"{round(100 * k / len(expected))}% ({k})" if k else "fresh start"
        skip, mine = took["plain", k], took["loopline", k]
        td = f"{took['torchdata', k] * 1e3:.1f}" if StatefulDataLoader else "n/a"
        rows.append(
            f"{name} | {workers} | {at} | {skip * 1e3:.1f} | {mine * 1e3:.1f} | {td} | "
            f"{mine / took['plain', 0]:.2f}x | {mine / skip:.2f}x | {ok}"
        )
    return rows


def figure_resume(quick: bool) -> str:
    n, m, repeats = (400, 160, 1) if quick else (2000, 480, 3)
    # torchdata warns on every loader, and logs that it fast-forwards iterable datasets.
    warnings.filterwarnings("ignore", message=".*set_vital.*")
    logging.getLogger("torchdata").setLevel(logging.ERROR)
    slow, hand = partial(SlowItems, n), partial(Items, m, 0)
    whole = partial(from_generator, items, m, 0)
    own = partial(from_generator, own_items, m, 0, sharded=True)
    cases = [("map-style + EpochSampler", slow, slow, w) for w in (0, 2)]
    cases += [("from_generator, sharded=False", whole, hand, w) for w in (0, 2)]
    cases += [("from_generator, sharded=True", own, hand, 2)]  # 0 workers: as sharded=False
    return section(
        "4. Time to resume mid-epoch",
        f"{n} map-style and {m} generator items of 1 ms, batch size 16, median of {repeats} "
        "run(s); the plain way uses a hand-sharded IterableDataset for the generators.",
        "dataset | workers | position | plain skip (ms) | loopline resume (ms) | torchdata "
        "resume (ms) | loopline vs fresh plain | loopline vs plain skip | correct",
        [row for case in cases for row in resume_rows(*case, repeats)],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run, noisier")
    quick = parser.parse_args().quick
    torch.set_num_threads(1)
    started = time.perf_counter()
    sections = [f"# loopline streams benchmark{' (--quick)' if quick else ''}\n\n{machine()}"]
    print(sections[0] + "\n", flush=True)
    for figure in (figure_generator, figure_overhead, figure_stall, figure_resume):
        sections.append(figure(quick))
        print(sections[-1] + "\n", flush=True)
    sections.append(f"Total run time: {time.perf_counter() - started:.0f} s.")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n\n".join(sections) + "\n")
    print(f"{sections[-1]} Wrote {OUT}.")


if __name__ == "__main__":
    main()
