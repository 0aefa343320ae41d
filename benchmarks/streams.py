"""Benchmarks of loopline's streams, each side by side with plain PyTorch.

Run ``python benchmarks/streams.py`` (3-4 minutes) or ``--quick`` (40 s, noisier); the tables
are printed and written to ``benchmarks/out/streams.md``.

1. ``from_generator`` throughput with 0, 1 and 2 persistent workers on a CPU-bound generator
   (300 us of arithmetic per sample), against a naive ``IterableDataset`` (every worker yields
   every sample: duplicates are counted) and a hand-sharded one; after a warm-up epoch.
2. Per-batch overhead of ``forever(loader, epochs=N)`` against ``for epoch: for batch in
   loader`` and, when installed, a ``torchdata.nodes`` pipeline built the way its migration
   guide rebuilds a DataLoader. With 0 workers all advance side by side, batch by batch,
   summing the time inside each one's ``next()``; with 2 workers whole runs are timed.
3. Epoch-boundary stall on 2 workers whose items sleep 2 ms (like I/O), for the four loops
   (a)-(d) of the table: the wait for the first batch of a later epoch over the mean wait
   inside one (both workers finish together, so waits alternate between ~0 and a batch's
   load time, which makes medians unstable).
4. Resume mid-epoch: from building a loader and restoring a state saved at 10%, 50% or 90%
   of an epoch to holding the first batch, against the plain way (load and discard the
   batches before the position) and, when installed, torchdata's ``StatefulDataLoader`` and
   ``torchdata.nodes`` ``Loader``. Each resumed first batch is checked against an
   uninterrupted run.

Compared variants run in turn, the order reversed every other round, so that drift in this
shared machine's speed hits all alike; each figure is a median after a warm-up. One intra-op
thread per process (PyTorch sets it in workers), so that processes do not fight over cores.
"""

import argparse
import copy
import gc
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
from torch.utils.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    Sampler,
    SequentialSampler,
    TensorDataset,
    default_collate,
    get_worker_info,
)

from loopline import EpochSampler, current_shard, forever, from_generator

# The peers are optional: a clean clone has no torchdata, and the tables then say so.
try:
    from torchdata.stateful_dataloader import StatefulDataLoader
except ImportError:
    StatefulDataLoader = None
try:
    import torchdata.nodes as tn  # from torchdata 0.10 on
except ImportError:
    tn = None

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
    """The machine line (benchmarks/_results.py replaces it by its header) and the settings."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    cpu = next((ln.split(":")[1].strip() for ln in lines if "model name" in ln), platform.machine())
    torchdata = version("torchdata") if StatefulDataLoader or tn else "not installed"
    return (
        f"Machine: {cpu}, {len(os.sched_getaffinity(0))} usable cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}, loopline {version('loopline')}, "
        f"torchdata {torchdata}.\n\nSettings: one intra-op thread per process, workers started "
        f"by {torch.multiprocessing.get_start_method()}, load {os.getloadavg()[0]:.2f} at the "
        "start."
    )


def fetch_batch(dataset: Dataset, indices: list[int]) -> Any:
    """What a DataLoader worker makes of a batch of indices: the collated items."""
    return default_collate([dataset[i] for i in indices])


def nodes_loader(
    dataset: Dataset, batch: int, workers: int = 0, sampler: Sampler | None = None
) -> Any:
    """A DataLoader rebuilt from torchdata.nodes as its migration guide does: indices batched
    in this process, each batch fetched and collated in order by one of `workers` processes
    (2 batches per worker in flight, as DataLoader's prefetch_factor=2, then the guide's
    Prefetcher of 2 per worker), or here with 0 workers."""
    node = tn.SamplerWrapper(sampler or SequentialSampler(dataset))
    node = tn.Batcher(node, batch_size=batch, drop_last=False)
    fetch = partial(fetch_batch, dataset)
    if not workers:
        return tn.Loader(tn.Mapper(node, fetch))
    node = tn.ParallelMapper(node, fetch, num_workers=workers, method="process", in_order=True)
    return tn.Loader(tn.Prefetcher(node, prefetch_factor=2 * workers))


def nodes_stream(dataset: IterableDataset, batch: int) -> Any:
    """An iterable in torchdata.nodes: it runs in this process, as nodes shards no iterable
    across workers; restoring a state replays the items before it (no state_dict of its own)."""
    node = tn.Batcher(tn.IterableWrapper(dataset), batch_size=batch, drop_last=False)
    return tn.Loader(tn.Mapper(node, default_collate))


def collected(result: Any) -> Any:
    """`result`, after collecting garbage: a dropped torchdata.nodes pipeline in a reference
    cycle would otherwise be copied into the next forked workers and fail there when freed."""
    gc.collect()
    return result


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
# The ways to come back to a position, and the column each has in the table.
KINDS = {
    "plain": "plain skip",
    "loopline": "loopline forever",
    "stateful": "StatefulDataLoader",
    "nodes": "torchdata.nodes Loader",
}


def holder(kind: str, data: Callable[[float], Any], cost: float, workers: int) -> Any:
    """A new loader over `data(cost)` in what holds its position: forever for loopline, a
    StatefulDataLoader or a torchdata.nodes Loader for torchdata, a DataLoader for the plain way."""
    dataset = data(cost)
    sampler = EpochSampler(len(dataset), seed=0) if isinstance(dataset, SlowItems) else None
    if kind == "nodes":
        return nodes_loader(dataset, 16, workers, sampler) if sampler else nodes_stream(dataset, 16)
    cls = StatefulDataLoader if kind == "stateful" else DataLoader
    batches = loader(dataset, 16, workers, cls, sampler=sampler)
    return forever(batches) if kind == "loopline" else batches


def release(kind: str, owner: Any, batches: Iterator[Any], workers: int) -> None:
    """Stops a loader's workers now, after the clock, not at garbage collection. A nodes
    pipeline with workers runs to the end of its epoch first: dropped early, its workers may
    exit before its reader thread unpickles the batches they sent, and that thread fails."""
    if kind == "loopline":
        owner.close()
    elif kind == "nodes":
        collected(workers and sum(1 for _ in batches))


def saved_state(kind: str, data: Callable, workers: int, skip: int) -> Any:
    """The state after `skip` batches, saved from a cost-free copy: a state holds positions."""
    owner = holder(kind, data, 0.0, workers)
    batches = iter(owner)
    list(itertools.islice(batches, skip))
    state = copy.deepcopy(owner.state_dict())  # nothing of it may change as the loader ends
    release(kind, owner, batches, workers)
    return state


def first_batch(kind: str, data: Callable, workers: int, skip: int, state: Any, expected: list):
    """Seconds from building a loader and bringing it to position `skip` (plain: discard the
    batches before it; else restore `state`) to its first batch, and whether it is `expected`."""
    start = time.perf_counter()
    owner = holder(kind, data, 0.001, workers)
    if state is not None:
        owner.load_state_dict(state)
    batches = iter(owner)
    batch = next(itertools.islice(batches, skip if kind == "plain" else 0, None))
    elapsed = time.perf_counter() - start
    release(kind, owner, batches, workers)
    return elapsed, batch.tolist() == expected


def missing_peers(workers: int, map_style: bool) -> dict[str, str]:
    """The torchdata kinds that have no place in a row, each with what its cell says."""
    missing = {"stateful": "not installed"} if StatefulDataLoader is None else {}
    if tn is None:
        missing["nodes"] = "not installed"
    elif workers and not map_style:
        # torchdata.nodes runs an iterable in the main process (it shards none across
        # workers, has no get_worker_info): a generator with workers has no counterpart.
        missing["nodes"] = "n/a"
    return missing


def resume_rows(name: str, ours: Callable, plain: Callable, workers: int, repeats: int) -> list:
    """Figure 4's rows for one dataset (made given an item's cost) and worker count."""
    data = {"plain": plain, "loopline": ours, "stateful": plain, "nodes": plain}
    missing = missing_peers(workers, isinstance(plain(0.0), SlowItems))
    kinds = [kind for kind in KINDS if kind not in missing]
    expected = [b.tolist() for b in holder("plain", plain, 0.0, workers)]
    positions = [0] + [round(f * len(expected)) for f in (0.1, 0.5, 0.9)]
    variants = {}
    for kind, k in itertools.product(kinds, positions):
        state = saved_state(kind, data[kind], workers, k) if k and kind != "plain" else None
        variants[kind, k] = partial(first_batch, kind, data[kind], workers, k, state, expected[k])
    for kind in kinds:  # warm-up: fresh starts
        variants[kind, 0]()
    runs = interleaved(variants, repeats, warmup=False)
    took = {key: median(t for t, _ in results) for key, results in runs.items()}
    rows = []
    for k in positions:
        wrong = [KINDS[kind] for kind in kinds if not all(ok for _, ok in runs[kind, k])]
        cells = [
            f"{took[kind, k] * 1e3:.1f} ({took[kind, k] / took['plain', k]:.2f}x)"
            if kind in kinds
            else missing[kind]
            for kind in list(KINDS)[1:]
        ]
        at = f"{round(100 * k / len(expected))}% ({k})" if k else "fresh start"
        rows.append(
            f"{name} | {workers} | {at} | {took['plain', k] * 1e3:.1f} | {' | '.join(cells)} | "
            f"{took['loopline', k] / took['plain', 0]:.2f}x | "
            + ("NO: " + ", ".join(wrong) if wrong else "yes")
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
        "run(s); ms to the first batch, and in brackets over the plain way's at the same "
        "position. The plain way uses a hand-sharded IterableDataset for the generators; "
        "torchdata's loaders use the plain way's datasets. torchdata.nodes: the DataLoader of "
        "its migration guide over the same EpochSampler (as in figure 2), restored with "
        "load_state_dict; for a generator, IterableWrapper over the plain iterable (0 workers "
        "only: nodes does not shard an iterable across workers, hence n/a with 2), which "
        "replays the items before the position, having no state of its own to restore.",
        "dataset | workers | position | plain skip (ms) | loopline resume | StatefulDataLoader "
        "resume | torchdata.nodes resume | loopline vs fresh plain | correct",
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
