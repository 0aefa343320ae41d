"""Benchmarks of loopline's streams, each measured side by side with plain PyTorch.

Run ``python benchmarks/streams.py`` (about 2-3 minutes) or ``--quick`` (about 30 s, for a
smoke test; its numbers are noisier). One Markdown table per figure is printed and also
written to ``benchmarks/out/streams.md``.

Figures:

1. Throughput of ``loopline.from_generator`` with 0, 1 and 2 DataLoader workers on a
   CPU-bound generator (pure-Python arithmetic per sample), ``sharded=False`` (every
   worker runs the whole generator and keeps its positions) and ``sharded=True`` (the
   generator asks ``current_shard()`` and computes only its own samples), against a naive
   ``IterableDataset`` (every worker yields every sample: duplicates are counted) and a
   hand-sharded one (``get_worker_info``). Workers are persistent and one warm-up epoch
   runs before timing, so worker start-up is excluded: this is steady-state throughput.
   Samples are ``(id, value)`` tuples batched into lists; ``--tensors`` makes them tensors
   batched by ``default_collate``, which adds PyTorch's cost of passing each batch's
   shared memory from a busy worker to the main process.
2. Per-batch overhead of ``loopline.forever(loader, epochs=N)`` against a plain
   ``for epoch: for batch in loader`` loop, over a cheap ``TensorDataset`` with
   ``num_workers`` 0 and 2 (with 2 workers also against ``persistent_workers=True``).
   With 0 workers the two loops advance side by side, batch by batch, and the time inside
   each one's ``next()`` is summed, so that both see the same machine speed (this shared
   machine's speed drifts by 10-20% between runs of a few seconds). With 2 workers whole
   runs are interleaved in alternating order; the overhead is the median over rounds of
   the ratio of run times within a round.
3. Epoch-boundary stall: the time from asking for a batch to getting it, for every batch
   of several epochs of a 2-worker DataLoader whose items each cost about 2 ms (a
   ``time.sleep`` by default: stable, and like I/O it leaves the 2 cores to the loader's
   processes; ``--load cpu`` busy-waits instead). The consumer does no work between
   batches. Reported: the mean and median wait of a batch inside an epoch, the wait for
   the first batch of each epoch after the first, their ratio, and the time each epoch
   boundary loses. Epochs have an odd number of batches so that the boundary does not
   always fall on the same slot of the two workers' paired batches. Variants: a new
   DataLoader each epoch, ``persistent_workers=True``, catching ``StopIteration`` and
   calling ``iter()`` again, and ``loopline.forever``.
4. Time to resume mid-epoch: the time from building ``forever(fresh_loader)`` and calling
   ``load_state_dict(state)`` to holding the first batch, for states saved at 10%, 50%
   and 90% of an epoch, against a fresh start, against the plain way (iterate and throw
   away the batches before the position) and, when installed, torchdata's
   ``StatefulDataLoader``. A map-style dataset with ``EpochSampler`` (items cost about
   1 ms) and a ``from_generator`` dataset (whose resume replays the generator). The
   saved states come from identical loaders over a cost-free copy of the dataset (a
   state holds positions only), and every resumed first batch is checked against an
   uninterrupted run.

Timing uses ``time.perf_counter``; every number is a median over repeats after a warm-up.
Intra-op threads are set to 1 in the main process and in every worker so that processes
do not fight over the 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset, get_worker_info

import loopline
from loopline import EpochSampler, current_shard, forever, from_generator

OUT = Path(__file__).resolve().parent / "out" / "streams.md"


@dataclass(frozen=True)
class Config:
    """Sizes of every figure; `--quick` shrinks them."""

    quick: bool
    repeats: int
    # figure 1
    gen_samples: int
    gen_cost_us: float
    gen_batch: int
    # figure 2
    overhead_items: int
    overhead_items_workers: int
    overhead_epochs: int
    overhead_rounds: int
    overhead_repeats: int
    # figure 3
    stall_batches: int
    stall_epochs: int
    stall_repeats: int
    # figure 4
    resume_items: int
    resume_gen_items: int
    resume_repeats: int
    load: str
    tensors: bool


def make_config(quick: bool, load: str, tensors: bool) -> Config:
    if quick:
        return Config(
            quick=True,
            repeats=2,
            gen_samples=240,
            gen_cost_us=300.0,
            gen_batch=16,
            overhead_items=20_000,
            overhead_items_workers=5_000,
            overhead_epochs=2,
            overhead_rounds=1,
            overhead_repeats=3,
            stall_batches=21,
            stall_epochs=4,
            stall_repeats=1,
            resume_items=400,
            resume_gen_items=160,
            resume_repeats=1,
            load=load,
            tensors=tensors,
        )
    return Config(
        quick=False,
        repeats=5,
        gen_samples=800,
        gen_cost_us=300.0,
        gen_batch=16,
        overhead_items=100_000,
        overhead_items_workers=10_000,
        overhead_epochs=3,
        overhead_rounds=3,
        overhead_repeats=7,
        stall_batches=31,
        stall_epochs=6,
        stall_repeats=3,
        resume_items=2000,
        resume_gen_items=480,
        resume_repeats=3,
        load=load,
        tensors=tensors,
    )


# ------------------------------------------------------------------------ helpers


def one_thread(worker_id: int) -> None:
    """worker_init_fn: one intra-op thread per worker, so workers do not fight."""
    torch.set_num_threads(1)


def init_fn(num_workers: int) -> Callable[[int], None] | None:
    return one_thread if num_workers > 0 else None


def busy_wait(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def load(seconds: float, mode: str) -> None:
    """Simulated cost of loading one item: sleep (like I/O) or busy-wait (like decoding)."""
    if seconds <= 0:
        return
    if mode == "sleep":
        time.sleep(seconds)
    else:
        busy_wait(seconds)


def median(values: list[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f}"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


class Report:
    """Collects Markdown sections, printing each as soon as it is ready."""

    def __init__(self) -> None:
        self.sections: list[str] = []

    def add(self, text: str) -> None:
        self.sections.append(text)
        print(text + "\n", flush=True)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n\n".join(self.sections) + "\n")


def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        import torchdata

        td = torchdata.__version__
    except ImportError:
        td = "not installed"
    return "\n".join(
        [
            "## Machine",
            "",
            f"- CPU: {model}; os.cpu_count() = {os.cpu_count()}, usable cores = {usable}",
            f"- {platform.system()} {platform.release()}, Python {platform.python_version()}",
            f"- torch {torch.__version__} (intra-op threads set to 1), loopline "
            f"{getattr(loopline, '__version__', _dist_version('loopline'))}, torchdata {td}",
            f"- DataLoader start method: {torch.multiprocessing.get_start_method()}",
            f"- load average at start (1, 5, 15 min): {load_average()} (other processes "
            "on the machine add noise; every comparison is interleaved to share it)",
        ]
    )


def load_average() -> str:
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def cpu_times() -> list[int] | None:
    """The aggregate CPU line of /proc/stat (user, nice, system, idle, ..., steal), if any."""
    try:
        with open("/proc/stat") as stat:
            return [int(field) for field in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def cpu_note(before: list[int] | None) -> str:
    """Busy and steal shares of all cores since `before` (steal: taken by the hypervisor)."""
    after = cpu_times()
    if before is None or after is None or len(after) < 8:
        return ""
    delta = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(delta[:8]) or 1
    busy = total - delta[3] - delta[4]  # minus idle and iowait
    return f"; CPU busy {100 * busy / total:.0f}%, steal {100 * delta[7] / total:.0f}%"


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def stateful_dataloader() -> type | None:
    """torchdata's StatefulDataLoader, quietened, or None when torchdata is missing."""
    try:
        from torchdata.stateful_dataloader import StatefulDataLoader
    except ImportError:
        return None
    warnings.filterwarnings("ignore", message=".*set_vital.*")
    logging.getLogger("torchdata").setLevel(logging.ERROR)
    logging.getLogger("torchdata.stateful_dataloader").setLevel(logging.ERROR)
    return StatefulDataLoader


# ----------------------------------------------------- figure 1: generator throughput


def compute(i: int, rounds: int, tensor: bool = False) -> Any:
    """A CPU-bound sample: pure-Python arithmetic; `(id, value)`, as a tensor if asked."""
    acc = i
    for _ in range(rounds):
        acc = (acc * 1103515245 + 12345) & 0x7FFFFFFF
    if tensor:
        return torch.tensor([i, acc & 0xFFFF], dtype=torch.int64)
    return i, acc & 0xFFFF


def busy_rounds(rounds: int) -> int:
    """`rounds` rounds of `compute`'s arithmetic in one call (for the scaling reference)."""
    return compute(0, rounds)[1]


def parallel_scaling(rounds: int, repeats: int) -> list[float]:
    """How many times one process's rate two processes reach on this machine (the ceiling
    for 2 workers): the median over `repeats` of (two calls in a row) / (one call in each
    of two processes), each repeat's ratio in a sorted list."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    ratios = []
    with context.Pool(2) as pool:
        pool.map(busy_rounds, [1000, 1000])  # start both processes
        for _ in range(repeats):
            start = time.perf_counter()
            busy_rounds(rounds)
            busy_rounds(rounds)
            serial = time.perf_counter() - start
            start = time.perf_counter()
            pool.map(busy_rounds, [rounds, rounds], chunksize=1)
            ratios.append(serial / (time.perf_counter() - start))
    return sorted(ratios)


def keep_rows(batch: list[Any]) -> list[Any]:
    """collate_fn for figure 1: keep the samples as a list (no tensor crosses processes)."""
    return batch


def sample_ids(batch: Any) -> list[int]:
    if isinstance(batch, torch.Tensor):
        return batch[:, 0].tolist()
    return [row[0] for row in batch]


def sample_cost(rounds: int) -> float:
    """Seconds per `compute(i, rounds)`: the best of 5 trials, so background load hurts less."""
    compute(0, rounds)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for i in range(20):
            compute(i, rounds)
        best = min(best, (time.perf_counter() - start) / 20)
    return best


def calibrate(cost_us: float) -> int:
    """The number of rounds of `compute` that costs about `cost_us` microseconds."""
    rounds = 1000
    return max(1, round(rounds * cost_us * 1e-6 / sample_cost(rounds)))


def samples(n: int, rounds: int, tensor: bool) -> Iterator[Any]:
    """from_generator(sharded=False): the whole sequence; loopline keeps this shard's part."""
    for i in range(n):
        yield compute(i, rounds, tensor)


def own_samples(n: int, rounds: int, tensor: bool) -> Iterator[Any]:
    """from_generator(sharded=True): computes only the samples of current_shard()."""
    shard = current_shard()
    for i in range(shard.index, n, shard.count):
        yield compute(i, rounds, tensor)


class NaiveSamples(IterableDataset):
    """Plain PyTorch, naive: every worker yields every sample."""

    def __init__(self, n: int, rounds: int, tensor: bool) -> None:
        self.n, self.rounds, self.tensor = n, rounds, tensor

    def __iter__(self) -> Iterator[Any]:
        return samples(self.n, self.rounds, self.tensor)


class HandShardedSamples(IterableDataset):
    """Plain PyTorch, hand-sharded with get_worker_info: worker w computes i % count == w."""

    def __init__(self, n: int, rounds: int, tensor: bool) -> None:
        self.n, self.rounds, self.tensor = n, rounds, tensor

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        index, count = (info.id, info.num_workers) if info is not None else (0, 1)
        for i in range(index, self.n, count):
            yield compute(i, self.rounds, self.tensor)


def timed_epoch(loader: DataLoader) -> float:
    start = time.perf_counter()
    for _batch in loader:
        pass
    return time.perf_counter() - start


def figure_generator(cfg: Config, report: Report) -> None:
    rounds = calibrate(cfg.gen_cost_us)
    cost = sample_cost(rounds)
    n, tensor = cfg.gen_samples, cfg.tensors
    scaling = parallel_scaling(rounds * 800, cfg.repeats)
    hand = "plain IterableDataset, hand-sharded"
    variants: dict[str, Callable[[], IterableDataset]] = {
        "plain IterableDataset, naive": lambda: NaiveSamples(n, rounds, tensor),
        hand: lambda: HandShardedSamples(n, rounds, tensor),
        "loopline from_generator, sharded=False": lambda: from_generator(
            samples, n, rounds, tensor
        ),
        "loopline from_generator, sharded=True": lambda: from_generator(
            own_samples, n, rounds, tensor, sharded=True
        ),
    }
    # Every (dataset, workers) loader stays alive (idle workers cost nothing) and the timed
    # epochs go round all of them, so that slow drifts in the machine's speed (a shared
    # virtual machine) hit every configuration alike; ratios are taken within a round.
    configs = [(name, workers) for workers in (0, 1, 2) for name in variants]
    loaders = {
        (name, workers): DataLoader(
            variants[name](),
            batch_size=cfg.gen_batch,
            collate_fn=None if tensor else keep_rows,
            num_workers=workers,
            persistent_workers=workers > 0,
            worker_init_fn=init_fn(workers),
        )
        for name, workers in configs
    }
    counts: dict[tuple[str, int], tuple[int, int]] = {}
    for config, loader in loaders.items():  # warm-up epoch: starts the workers
        ids = [i for batch in loader for i in sample_ids(batch)]
        counts[config] = (len(ids), len(set(ids)))
    times: dict[tuple[str, int], list[float]] = {config: [] for config in configs}
    for repeat in range(cfg.repeats):
        for config in configs if repeat % 2 == 0 else configs[::-1]:
            times[config].append(timed_epoch(loaders[config]))
    del loaders

    def paired(a: tuple[str, int], b: tuple[str, int]) -> float:
        """Median over rounds of distinct/s of `a` relative to distinct/s of `b`."""
        return median(
            [
                (counts[a][1] / ta) / (counts[b][1] / tb)
                for ta, tb in zip(times[a], times[b], strict=True)
            ]
        )

    rows = []
    for name in variants:
        for workers in (0, 1, 2):
            config = (name, workers)
            seconds = median(times[config])
            delivered, distinct = counts[config]
            rows.append(
                [
                    name,
                    workers,
                    f"{seconds * 1e3:.0f}",
                    f"{min(times[config]) * 1e3:.0f}",
                    delivered,
                    delivered - distinct,
                    f"{distinct / seconds:,.0f}",
                    ratio(paired(config, (name, 0))),
                    ratio(paired(config, (hand, workers))),
                ]
            )
    report.add(
        "\n".join(
            [
                "## 1. from_generator throughput (CPU-bound generator)",
                "",
                f"{n} samples per epoch, each about {cost * 1e6:.0f} us of pure-Python "
                f"arithmetic (timed in the main process); batch size {cfg.gen_batch}, "
                + (
                    "samples are tensors batched by default_collate; "
                    if tensor
                    else "samples are (id, value) tuples and batches plain lists (run with "
                    "--tensors for tensor batches, which cross processes through PyTorch's "
                    "shared-memory file descriptors); "
                )
                + "persistent workers, one warm-up "
                f"epoch, then {cfg.repeats} rounds that time one epoch of every row in turn. "
                "'distinct/s' counts each sample once; 'duplicates' = delivered - distinct "
                "per epoch. Speed-ups are medians over rounds of distinct/s relative to the "
                "same dataset with 0 workers, and to the hand-sharded plain IterableDataset "
                "with the same number of workers (higher is better). Reference: two "
                "processes doing this arithmetic side by side reach "
                f"{median(scaling):.2f}x the rate of one on this machine (median of "
                f"{len(scaling)}, range {scaling[0]:.2f}x-{scaling[-1]:.2f}x): the ceiling "
                "for 2 workers.",
                "",
                table(
                    [
                        "dataset",
                        "workers",
                        "epoch, median (ms)",
                        "best (ms)",
                        "delivered",
                        "duplicates",
                        "distinct/s",
                        "speed-up vs 0 workers",
                        "vs hand-sharded",
                    ],
                    rows,
                ),
            ]
        )
    )


# --------------------------------------------------------- figure 2: forever overhead


def overhead_dataset(n: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 16, generator=generator), torch.randint(0, 10, (n,)))


def overhead_loader(dataset: TensorDataset, workers: int, persistent: bool = False) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=64,
        num_workers=workers,
        persistent_workers=persistent,
        worker_init_fn=init_fn(workers),
    )


def run_plain(dataset: TensorDataset, workers: int, epochs: int, persistent: bool) -> tuple:
    loader = overhead_loader(dataset, workers, persistent)
    batches = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for _batch in loader:
            batches += 1
    elapsed = time.perf_counter() - start
    del loader
    return elapsed, batches


def run_forever(dataset: TensorDataset, workers: int, epochs: int) -> tuple:
    loader = overhead_loader(dataset, workers)
    batches = 0
    start = time.perf_counter()
    for _batch in forever(loader, epochs=epochs):
        batches += 1
    elapsed = time.perf_counter() - start
    del loader
    return elapsed, batches


def plain_batches(loader: DataLoader, epochs: int) -> Iterator[Any]:
    for _ in range(epochs):
        yield from loader


def lockstep(dataset: TensorDataset, epochs: int) -> tuple[float, float, int]:
    """Total time inside next() of a plain loop and of forever, advanced batch by batch
    side by side (alternating which goes first), so both see the same machine speed."""
    plain = plain_batches(overhead_loader(dataset, 0), epochs)
    endless = forever(overhead_loader(dataset, 0), epochs=epochs)
    clock = time.perf_counter
    spent_plain = spent_forever = 0.0
    batches = 0
    while True:
        if batches % 2 == 0:
            start = clock()
            a = next(plain, None)
            middle = clock()
            b = next(endless, None)
            spent_plain += middle - start
            spent_forever += clock() - middle
        else:
            start = clock()
            b = next(endless, None)
            middle = clock()
            a = next(plain, None)
            spent_forever += middle - start
            spent_plain += clock() - middle
        if a is None or b is None:
            if (a is None) != (b is None):
                raise RuntimeError("figure 2: forever and the plain loop gave different counts")
            return spent_plain, spent_forever, batches
        batches += 1


def figure_overhead(cfg: Config, report: Report) -> None:
    epochs = cfg.overhead_epochs
    plain = "plain for-epoch loop"
    endless = "loopline forever(loader, epochs=N)"
    rows = []

    # 0 workers: lock-step, batch by batch.
    dataset = overhead_dataset(cfg.overhead_items)
    lockstep(overhead_dataset(2000), 2)  # warm-up
    ratios, per_plain, per_forever = [], [], []
    for _ in range(cfg.overhead_rounds):
        spent_plain, spent_forever, batches = lockstep(dataset, epochs)
        ratios.append(spent_forever / spent_plain)
        per_plain.append(spent_plain / batches)
        per_forever.append(spent_forever / batches)
    for name, per in ((plain, per_plain), (endless, per_forever)):
        overhead = 0.0 if name == plain else median(ratios) - 1
        rows.append(
            [
                0,
                "lock-step",
                f"{cfg.overhead_items:,} x {epochs}",
                name,
                batches,
                us(median(per)),
                f"{(median(per) - median(per_plain)) * 1e6:+.2f}",
                f"{overhead * 100:+.2f}%",
            ]
        )

    # 2 workers: whole runs, interleaved (lock-step would make 4 workers share 2 cores).
    dataset = overhead_dataset(cfg.overhead_items_workers)
    variants: dict[str, Callable[[], tuple[float, int]]] = {
        plain: lambda: run_plain(dataset, 2, epochs, False),
        "plain loop, persistent_workers=True": lambda: run_plain(dataset, 2, epochs, True),
        endless: lambda: run_forever(dataset, 2, epochs),
    }
    for run in variants.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    counts: dict[str, int] = {}
    order = list(variants)
    for repeat in range(cfg.overhead_repeats):
        # Alternating the order, so drift and background load hit all alike.
        for name in order if repeat % 2 == 0 else order[::-1]:
            elapsed, counts[name] = variants[name]()
            times[name].append(elapsed)
    if len(set(counts.values())) != 1:
        raise RuntimeError(f"figure 2: the loops gave different batch counts: {counts}")
    for name in variants:
        paired = median([t / p for t, p in zip(times[name], times[plain], strict=True)])
        per = median(times[name]) / counts[name]
        rows.append(
            [
                2,
                "whole runs",
                f"{cfg.overhead_items_workers:,} x {epochs}",
                name,
                counts[name],
                us(per),
                f"{(per - median(times[plain]) / counts[plain]) * 1e6:+.1f}",
                f"{(paired - 1) * 100:+.1f}%",
            ]
        )
    report.add(
        "\n".join(
            [
                "## 2. Per-batch overhead of forever",
                "",
                "TensorDataset (16 floats + a label per item), batch size 64, the same epochs "
                "for every loop. 0 workers: a plain loop and forever over two identical "
                "loaders advance side by side, batch by batch (alternating which goes first), "
                "and the time inside each one's next() is summed, so both see the same "
                f"machine speed; median of {cfg.overhead_rounds} rounds of the ratio. "
                f"2 workers: {cfg.overhead_repeats} whole timed runs per loop after a "
                "warm-up run, interleaved in alternating order; overhead = median over "
                "rounds of (run time / the plain loop's run time in the same round) - 1. "
                "Worker start-up is inside those runs (the plain loop without persistent "
                "workers restarts them every epoch; forever starts them once). This machine's "
                "speed drifts by 10-20% between whole runs of a second or two, so the "
                "2-worker figures are only good to about that.",
                "",
                table(
                    [
                        "workers",
                        "method",
                        "items x epochs",
                        "loop",
                        "batches",
                        "time per batch (us)",
                        "difference (us)",
                        "overhead vs plain loop",
                    ],
                    rows,
                ),
            ]
        )
    )


# ------------------------------------------------------- figure 3: epoch-boundary stall


class SlowItems(Dataset):
    """A map-style dataset whose items cost `cost` seconds each and are their own index."""

    def __init__(self, n: int, cost: float, mode: str) -> None:
        self.n, self.cost, self.mode = n, cost, mode

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        load(self.cost, self.mode)
        return index


STALL_BATCH = 8
STALL_WORKERS = 2


def stall_loader(dataset: SlowItems, persistent: bool) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=STALL_BATCH,
        num_workers=STALL_WORKERS,
        persistent_workers=persistent,
        worker_init_fn=one_thread,
    )


def restart_each_epoch(dataset: SlowItems, epochs: int) -> Iterator[tuple[int, Any]]:
    for epoch in range(epochs):
        for batch in stall_loader(dataset, persistent=False):
            yield epoch, batch


def persistent_workers(dataset: SlowItems, epochs: int) -> Iterator[tuple[int, Any]]:
    loader = stall_loader(dataset, persistent=True)
    for epoch in range(epochs):
        for batch in loader:
            yield epoch, batch


def reiterate_on_stop(dataset: SlowItems, epochs: int) -> Iterator[tuple[int, Any]]:
    loader = stall_loader(dataset, persistent=False)
    batches, epoch = iter(loader), 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            epoch += 1
            if epoch == epochs:
                return
            batches = iter(loader)
            continue
        yield epoch, batch


def loopline_forever(dataset: SlowItems, epochs: int) -> Iterator[tuple[int, Any]]:
    stream = forever(stall_loader(dataset, persistent=False), epochs=epochs)
    for batch in stream:
        yield stream.epoch, batch


def measure_waits(stream: Iterator[tuple[int, Any]]) -> tuple[list[float], list[int]]:
    """The wait for every batch of `stream` and the epoch it belongs to."""
    waits, epochs = [], []
    while True:
        start = time.perf_counter()
        item = next(stream, None)
        elapsed = time.perf_counter() - start
        if item is None:
            return waits, epochs
        waits.append(elapsed)
        epochs.append(item[0])


def figure_stall(cfg: Config, report: Report) -> None:
    dataset = SlowItems(cfg.stall_batches * STALL_BATCH, 0.002, cfg.load)
    restart = "(a) new DataLoader each epoch"
    variants = {
        restart: restart_each_epoch,
        "(b) persistent_workers=True": persistent_workers,
        "(c) catch StopIteration, iter() again": reiterate_on_stop,
        "(d) loopline forever": loopline_forever,
    }
    for run in variants.values():  # warm-up (imports, page cache, first fork)
        measure_waits(run(dataset, 2))
    inside: dict[str, list[float]] = {name: [] for name in variants}
    starts: dict[str, list[float]] = {name: [] for name in variants}
    lost: dict[str, list[float]] = {name: [] for name in variants}
    cold: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(cfg.stall_repeats):
        order = list(variants) if repeat % 2 == 0 else list(variants)[::-1]
        for name in order:
            waits, epochs = measure_waits(variants[name](dataset, cfg.stall_epochs))
            if sorted(set(epochs)) != list(range(cfg.stall_epochs)):
                raise RuntimeError(f"figure 3: {name} reported epochs {sorted(set(epochs))}")
            firsts = [i for i in range(len(waits)) if i == 0 or epochs[i - 1] != epochs[i]]
            cold[name].append(waits[0])
            starts[name] += [waits[i] for i in firsts[1:]]
            others = [w for i, w in enumerate(waits) if i not in firsts]
            inside[name] += others
            # Time each later epoch took beyond its batches at the run's inside-epoch pace.
            pace = statistics.fmean(others)
            for epoch in range(1, cfg.stall_epochs):
                took = [w for w, e in zip(waits, epochs, strict=True) if e == epoch]
                lost[name].append(sum(took) - len(took) * pace)
    rows = []
    for name in variants:
        mean = statistics.fmean(inside[name])
        start = statistics.fmean(starts[name])
        rows.append(
            [
                name,
                ms(median(cold[name])),
                ms(mean),
                ms(median(inside[name])),
                ms(start),
                ms(max(starts[name])),
                ratio(start / mean),
                ratio(median(starts[name]) / median(inside[name])),
                ms(statistics.fmean(lost[name])),
                ratio(start / statistics.fmean(starts[restart])),
            ]
        )
    boundaries = len(starts[restart])
    report.add(
        "\n".join(
            [
                "## 3. Epoch-boundary stall",
                "",
                f"2 workers, batch size {STALL_BATCH}, {cfg.stall_batches} batches per epoch, "
                f"{cfg.stall_epochs} epochs per run, {cfg.stall_repeats} run(s) per variant "
                f"after a warm-up run ({boundaries} epoch boundaries per variant); each item "
                f"costs 2 ms ({'time.sleep' if cfg.load == 'sleep' else 'busy-wait'}); the "
                "consumer does no work between batches. 'wait' = time from asking for a batch "
                "to getting it. Both workers finish their batches at about the same time, so "
                "waits inside an epoch alternate between ~0 and ~one batch's load time and "
                "their median is unstable; the ratio therefore uses means: 'stall ratio' = "
                "mean wait for the first batch of epochs 1.. / mean wait for the other "
                "batches. 'first/median' is the same with medians, for comparison with the "
                "issue. The odd number of batches per epoch makes epoch starts fall on both "
                "slots of a worker pair. 'lost per boundary' = a later epoch's total wait "
                "minus its batches at the inside-epoch pace.",
                "",
                table(
                    [
                        "variant",
                        "first batch of run (ms)",
                        "mean wait (ms)",
                        "median wait (ms)",
                        "epoch-start wait (ms)",
                        "worst epoch start (ms)",
                        "stall ratio",
                        "first/median",
                        "lost per boundary (ms)",
                        "epoch start vs (a)",
                    ],
                    rows,
                ),
            ]
        )
    )


# ------------------------------------------------------------ figure 4: resume time


RESUME_BATCH = 16
FRACTIONS = (0.1, 0.5, 0.9)


def map_loader(dataset: Dataset, workers: int, cls: type = DataLoader) -> DataLoader:
    return cls(
        dataset,
        batch_size=RESUME_BATCH,
        sampler=EpochSampler(len(dataset), seed=0),  # type: ignore[arg-type]
        num_workers=workers,
        worker_init_fn=init_fn(workers),
    )


def slow_numbers(n: int, cost: float, mode: str) -> Iterator[int]:
    """from_generator(sharded=False): item i costs `cost` seconds to make."""
    for i in range(n):
        load(cost, mode)
        yield i


def own_slow_numbers(n: int, cost: float, mode: str) -> Iterator[int]:
    """from_generator(sharded=True): makes only the items of current_shard()."""
    shard = current_shard()
    for i in range(shard.index, n, shard.count):
        load(cost, mode)
        yield i


class HandShardedNumbers(IterableDataset):
    """Plain PyTorch: a hand-sharded IterableDataset of the same items."""

    def __init__(self, n: int, cost: float, mode: str) -> None:
        self.n, self.cost, self.mode = n, cost, mode

    def __iter__(self) -> Iterator[int]:
        info = get_worker_info()
        index, count = (info.id, info.num_workers) if info is not None else (0, 1)
        for i in range(index, self.n, count):
            load(self.cost, self.mode)
            yield i


def iterable_loader(dataset: IterableDataset, workers: int, cls: type = DataLoader) -> DataLoader:
    return cls(
        dataset, batch_size=RESUME_BATCH, num_workers=workers, worker_init_fn=init_fn(workers)
    )


@dataclass
class ResumeCase:
    """One dataset kind: how to build it (with or without item cost) and its loaders."""

    name: str
    dataset: Callable[[float], Any]  # cost -> dataset
    loader: Callable[..., DataLoader]  # (dataset, workers, cls) -> loader
    plain_dataset: Callable[[float], Any]
    batches: int
    cost: float


def first_after(make: Callable[[], Iterator[Any]]) -> tuple[float, list[int]]:
    """Time from calling `make` (build + restore) to holding the first batch."""
    start = time.perf_counter()
    batches = make()
    batch = next(batches)
    elapsed = time.perf_counter() - start
    ids = batch.tolist()
    close = getattr(batches, "close", None)  # Forever.close() stops its workers now
    if callable(close):
        close()
    del batches
    return elapsed, ids


def resume_loopline(case: ResumeCase, workers: int, state: dict | None) -> Iterator[Any]:
    stream = forever(case.loader(case.dataset(case.cost), workers))
    if state is not None:
        stream.load_state_dict(state)
    return stream


def resume_plain(case: ResumeCase, workers: int, skip: int) -> Iterator[Any]:
    batches = iter(case.loader(case.plain_dataset(case.cost), workers))
    for _ in range(skip):
        next(batches)
    return batches


def resume_torchdata(case: ResumeCase, workers: int, state: dict | None, cls: type) -> Iterator:
    loader = case.loader(case.plain_dataset(case.cost), workers, cls)
    if state is not None:
        loader.load_state_dict(state)
    return iter(loader)


def saved_states(case: ResumeCase, workers: int, skip: int, stateful: type | None) -> tuple:
    """States after `skip` batches, from the same loaders over a cost-free dataset."""
    stream = forever(case.loader(case.dataset(0.0), workers))
    for _ in range(skip):
        next(stream)
    state = stream.state_dict()
    del stream
    td_state = None
    if stateful is not None:
        loader = case.loader(case.plain_dataset(0.0), workers, stateful)
        batches = iter(loader)
        for _ in range(skip):
            next(batches)
        td_state = loader.state_dict()
        del batches, loader
    return state, td_state


def figure_resume(cfg: Config, report: Report) -> None:
    stateful = stateful_dataloader()
    mode = cfg.load
    n, m = cfg.resume_items, cfg.resume_gen_items
    cost = 0.001
    cases = [
        ResumeCase(
            "map-style + EpochSampler",
            lambda cost: SlowItems(n, cost, mode),
            map_loader,
            lambda cost: SlowItems(n, cost, mode),
            -(-n // RESUME_BATCH),
            cost,
        ),
        ResumeCase(
            "from_generator, sharded=False",
            lambda cost: from_generator(slow_numbers, m, cost, mode),
            iterable_loader,
            lambda cost: HandShardedNumbers(m, cost, mode),
            m // RESUME_BATCH,
            cost,
        ),
        ResumeCase(
            "from_generator, sharded=True",
            lambda cost: from_generator(own_slow_numbers, m, cost, mode, sharded=True),
            iterable_loader,
            lambda cost: HandShardedNumbers(m, cost, mode),
            m // RESUME_BATCH,
            cost,
        ),
    ]
    rows = []
    for case in cases:
        for workers in (0, 2):
            if case.name.endswith("sharded=True") and workers == 0:
                continue  # identical to sharded=False in the main process
            # Expected batches of epoch 0, from an uninterrupted cost-free run.
            expected = [b.tolist() for b in case.loader(case.plain_dataset(0.0), workers)]
            positions = [0] + [round(f * case.batches) for f in FRACTIONS]
            states = {k: saved_states(case, workers, k, stateful) for k in positions[1:]}
            # Warm-up: one fresh start of each kind.
            first_after(lambda c=case, w=workers: resume_plain(c, w, 0))
            first_after(lambda c=case, w=workers: resume_loopline(c, w, None))
            fresh_plain: list[float] = []
            results: dict[int, dict[str, list[float]]] = {}
            correct: dict[int, bool] = {}
            for _ in range(cfg.resume_repeats):
                for k in positions:
                    got = results.setdefault(k, {"plain": [], "loopline": [], "torchdata": []})
                    state, td_state = states.get(k, (None, None))
                    elapsed, ids = first_after(lambda c=case, w=workers, s=k: resume_plain(c, w, s))
                    got["plain"].append(elapsed)
                    ok = ids == expected[k]
                    elapsed, ids = first_after(
                        lambda c=case, w=workers, s=state: resume_loopline(c, w, s)
                    )
                    got["loopline"].append(elapsed)
                    ok = ok and ids == expected[k]
                    if stateful is not None:
                        elapsed, ids = first_after(
                            lambda c=case, w=workers, s=td_state: resume_torchdata(
                                c, w, s, stateful
                            )
                        )
                        got["torchdata"].append(elapsed)
                        ok = ok and ids == expected[k]
                    correct[k] = correct.get(k, True) and ok
                    if k == 0:
                        fresh_plain.append(got["plain"][-1])
            start_plain = median(fresh_plain)
            for k in positions:
                got = results[k]
                plain, ours = median(got["plain"]), median(got["loopline"])
                td = ms(median(got["torchdata"])) if got["torchdata"] else "n/a"
                rows.append(
                    [
                        case.name,
                        workers,
                        "fresh start" if k == 0 else f"{round(100 * k / case.batches)}% ({k})",
                        ms(plain),
                        ms(ours),
                        td,
                        ratio(ours / start_plain),
                        ratio(ours / plain),
                        "yes" if correct[k] else "NO",
                    ]
                )
    note = (
        f"torchdata {__import__('torchdata').__version__} StatefulDataLoader compared"
        if stateful is not None
        else "torchdata not installed"
    )
    report.add(
        "\n".join(
            [
                "## 4. Time to resume mid-epoch",
                "",
                f"Map-style: {n} items of about {cost * 1e3:.0f} ms each "
                f"({'time.sleep' if mode == 'sleep' else 'busy-wait'}), batch size "
                f"{RESUME_BATCH}, sampler=EpochSampler(seed=0). Generators: {m} items of the "
                "same cost. Time from building the loader (and restoring the state) to the "
                "first batch, median of "
                f"{cfg.resume_repeats} run(s), after a warm-up; 'fresh start' restores nothing. "
                "'plain' skips to the position by loading and discarding batches (for the "
                "generators: a hand-sharded IterableDataset). 'vs fresh plain' = loopline's "
                "time / a plain fresh start with the same workers. 'correct' = every "
                f"resumed first batch equals the uninterrupted run's. {note}.",
                "",
                table(
                    [
                        "dataset",
                        "workers",
                        "position",
                        "plain skip (ms)",
                        "loopline resume (ms)",
                        "torchdata resume (ms)",
                        "loopline vs fresh plain",
                        "loopline vs plain skip",
                        "correct",
                    ],
                    rows,
                ),
            ]
        )
    )


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run")
    parser.add_argument(
        "--load",
        choices=("sleep", "cpu"),
        default="sleep",
        help="how figures 3 and 4 simulate the cost of an item (default: sleep)",
    )
    parser.add_argument(
        "--tensors",
        action="store_true",
        help="figure 1: samples are tensors batched by default_collate (default: tuples "
        "kept in lists, so PyTorch's tensor sharing between processes does not dominate)",
    )
    parser.add_argument(
        "--only", type=int, choices=(1, 2, 3, 4), action="append", help="run only these figures"
    )
    args = parser.parse_args(argv)
    cfg = make_config(args.quick, args.load, args.tensors)
    torch.set_num_threads(1)
    report = Report()
    started = time.perf_counter()
    report.add(
        "# loopline streams benchmark" + (" (--quick)" if cfg.quick else "") + "\n\n" + machine()
    )
    figures = {
        1: figure_generator,
        2: figure_overhead,
        3: figure_stall,
        4: figure_resume,
    }
    for number, figure in figures.items():
        if args.only and number not in args.only:
            continue
        began, ticks = time.perf_counter(), cpu_times()
        figure(cfg, report)
        report.add(
            f"_Figure {number} took {time.perf_counter() - began:.0f} s; load average "
            f"after it: {load_average()}{cpu_note(ticks)}._"
        )
    report.add(
        f"Total run time: {time.perf_counter() - started:.0f} s; load average at the end: "
        f"{load_average()}."
    )
    report.write(OUT)
    print(f"wrote {OUT.relative_to(Path.cwd()) if OUT.is_relative_to(Path.cwd()) else OUT}")


if __name__ == "__main__":
    sys.exit(main())
