"""Figure 3 of benchmarks/streams.py: the stall at an epoch boundary on 2 workers whose
items sleep 2 ms, for four ways of looping over epochs."""

from collections.abc import Iterable, Iterator
from functools import partial
from statistics import fmean, median
from typing import Any

from _streams_common import (
    interleaved,
    loader,
    plain_epochs,
    section,
    waits,
)
from _streams_data import SlowItems

from loopline import forever


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
