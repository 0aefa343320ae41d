"""Figure 1 of benchmarks/compose.py: Graph's forward against the hand-written one, µs per
call, the variants interleaved round by round."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from _compose_models import FORWARD_MODELS
from torch import nn

FORWARD_HEADERS = [
    "model",
    "pass",
    "hand-written µs",
    "Graph µs",
    "Graph / hand",
    "noise floor (hand / hand)",
]


def timed(fns: dict[str, Callable[[], Any]], reps: int, rounds: int) -> dict[str, list[float]]:
    """µs per call of each variant in each round, the variants interleaved."""
    names, times = list(fns), {name: [] for name in fns}
    for _ in range(2):
        for fn in fns.values():
            fn()
    gc.collect()
    gc.disable()  # as timeit does: a collection inside one variant would skew it
    try:
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                fn = fns[name]
                start = time.perf_counter()
                for _ in range(reps):
                    fn()
                times[name].append((time.perf_counter() - start) / reps * 1e6)
    finally:
        gc.enable()
    return times


def ratio(times: dict[str, list[float]], name: str, base: str = "hand") -> float:
    return statistics.median(a / b for a, b in zip(times[name], times[base], strict=True))


def calls(model: nn.Module, batch: dict, mode: str) -> Callable[[], Any]:
    if mode == "inference":
        return lambda: model(batch)

    def forward_backward() -> None:
        sum(v.sum() for v in model(batch).values()).backward()

    return forward_backward


def forward_rows(quick: bool) -> list[list[str]]:
    rows = []
    for name, build, batch_size, reps, rounds in FORWARD_MODELS:
        torch.manual_seed(0)
        hand, graph, batch = build(batch_size)
        graph.check(batch)  # once, before the run: forward itself checks nothing
        rounds = max(5, rounds // 4) if quick else rounds
        with torch.no_grad():
            assert all(torch.equal(graph(batch)[k], v) for k, v in hand(batch).items())
        for mode in ("inference", "training"):
            fns = {
                "hand": calls(hand, batch, mode),
                "hand again": calls(hand, batch, mode),
                "graph": calls(graph, batch, mode),
            }
            context = torch.inference_mode() if mode == "inference" else torch.enable_grad()
            with context:
                us = timed(fns, reps if mode == "inference" else max(1, reps // 3), rounds)
            hand_us, graph_us = statistics.median(us["hand"]), statistics.median(us["graph"])
            rows.append(
                [
                    name,
                    "forward" if mode == "inference" else "forward + backward",
                    f"{hand_us:.1f}",
                    f"{graph_us:.1f}",
                    f"{ratio(us, 'graph'):.3f}x",
                    f"{ratio(us, 'hand again'):.3f}x",
                ]
            )
            print(" | ".join(rows[-1]), flush=True)
    return rows
