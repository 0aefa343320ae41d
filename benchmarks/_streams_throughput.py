"""Figure 1 of benchmarks/streams.py: from_generator throughput with 0, 1 and 2 persistent
workers on a CPU-bound generator, against a naive and a hand-sharded IterableDataset."""

from functools import partial
from statistics import median

from _streams_common import (
    interleaved,
    loader,
    section,
    waits,
)
from _streams_data import Items, item, items, own_items

from loopline import from_generator


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
