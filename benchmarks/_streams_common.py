"""What the figures of benchmarks/streams.py share: the optional torchdata peers, timing
helpers, the report's sections and machine line, and loaders built from torchdata.nodes."""

import gc
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    Sampler,
    SequentialSampler,
    default_collate,
)

# The peers are optional: a clean clone has no torchdata, and the tables then say so.
try:
    from torchdata.stateful_dataloader import StatefulDataLoader
except ImportError:
    StatefulDataLoader = None
try:
    import torchdata.nodes as tn  # from torchdata 0.10 on
except ImportError:
    tn = None


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


def plain_epochs(batches: Iterable[Any], epochs: int) -> Iterator[Any]:
    for _ in range(epochs):
        yield from batches
