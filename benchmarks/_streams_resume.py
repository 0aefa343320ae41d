"""Figure 4 of benchmarks/streams.py: time to resume mid-epoch, from building a loader to
its first batch, against the plain skip and torchdata's loaders, each batch checked."""

import copy
import itertools
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from statistics import median
from typing import Any

from _streams_common import (
    StatefulDataLoader,
    collected,
    interleaved,
    loader,
    nodes_loader,
    nodes_stream,
    section,
    tn,
)
from _streams_data import Items, SlowItems, items, own_items, own_items_from_start
from torch.utils.data import DataLoader

from loopline import EpochSampler, forever, from_generator

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


def seek_rows(workers: int, repeats: int) -> list[str]:
    """A seekable generator resumed a million batches into its epoch, against its own fresh
    start (the plain skip, a million batches of 1 ms items, is not timed: 4.4 hours)."""
    position, size = 1_000_000, 10**9
    data = partial(from_generator, own_items_from_start, size, 0, sharded=True, seekable=True)
    state = saved_state("loopline", data, workers, 1)
    per_worker = [position // max(1, workers)] * max(1, workers)
    consumed = [n * 16 for n in per_worker]  # batches of 16 items
    entry = {"epoch": 0, "step": position, "position": per_worker, "consumed": consumed}
    state = {**state, "ranks": [entry]}
    count = max(1, workers)
    first = per_worker[0] * 16  # shard 0's own items already delivered
    expected = [(first + j) * count for j in range(16)]
    fresh = [j * count for j in range(16)]
    variants = {
        "fresh": partial(first_batch, "loopline", data, workers, 0, None, fresh),
        "seek": partial(first_batch, "loopline", data, workers, 0, state, expected),
    }
    variants["fresh"]()  # warm-up
    runs = interleaved(variants, repeats, warmup=False)
    took = {key: median(t for t, _ in results) for key, results in runs.items()}
    ok = all(good for results in runs.values() for _, good in results)
    return [
        f"from_generator, sharded=True, seekable=True | {workers} | {label} | not timed | "
        f"{took[key] * 1e3:.1f} ({took[key] / took['fresh']:.2f}x of its fresh start) | "
        f"n/a | n/a | {took[key] / took['fresh']:.2f}x | {'yes' if ok else 'NO'}"
        for key, label in (("fresh", "fresh start"), ("seek", f"{position:,} batches"))
    ]


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
        "replays the items before the position, having no state of its own to restore. "
        "The seekable rows: a generator that starts at current_shard().start itself, resumed "
        "a million batches in, against its own fresh start (goal: within 1.2x plus 20 ms).",
        "dataset | workers | position | plain skip (ms) | loopline resume | StatefulDataLoader "
        "resume | torchdata.nodes resume | loopline vs fresh plain | correct",
        [row for case in cases for row in resume_rows(*case, repeats)]
        + [row for workers in (0, 2) for row in seek_rows(workers, repeats)],
    )
