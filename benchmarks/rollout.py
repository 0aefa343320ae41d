"""Benchmark of loopline.rollout against the hand-written feedback loop, per step.

Run ``python benchmarks/rollout.py`` (about 80 s) or ``--quick`` (about 15 s). Tables are
printed and written to ``benchmarks/out/rollout.md``.

The hand loop is ``x = model(x)`` with every output appended to a list and stacked at the
end; all runs under ``torch.inference_mode()`` on one thread. The models are Linear -> ReLU
-> Linear -> Tanh with weights scaled by 4: a chaotic map, bounded by the tanh, that never
converges, so every variant runs all 200 steps and does the same work. rollout's overhead
is per step, not per element, so it shrinks as the model grows; the large model is sized
to keep the run under a minute on a slow CPU.

Timing: ``time.perf_counter`` around whole 200-step runs, two untimed rounds, then rounds
in which every variant runs once, the order rotating. Figures are medians in µs per step;
ratios are medians of per-round ratios (variants of a round run moments apart, so load
from other processes mostly cancels). A second copy of the hand loop shows the noise floor.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _report import publish, settings, table
from torch import nn

import loopline

OUT = Path(__file__).resolve().parent / "out" / "rollout.md"
STEPS = 200
MODELS = [  # name, features, hidden, batch, rounds
    ("small MLP 64-256-64, batch 64", 64, 256, 64, 90),
    ("large MLP 256-1024-256, batch 64", 256, 1024, 64, 11),
]
GUARD_HEADERS = [
    "model, 200 steps",
    "hand loop",
    'rollout, on_nonfinite="ignore"',
    "rollout, default guard",
    "hand loop + isfinite().all().item() per step",
]
OPTION_HEADERS = [
    "model, 200 steps",
    "hand loop, last only",
    'rollout, keep="last"',
    "hand loop + converged .item() per step",
    "rollout, until=converged()",
]


def steady_malloc() -> None:
    """glibc only: keep freed memory instead of handing it back to the OS. Otherwise the
    megabytes of stacked outputs are faulted in afresh at random runs, which swamps the
    differences measured here (it did, by up to 30%, on the machine these ran on)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    libc.mallopt(-3, 1 << 25)  # M_MMAP_THRESHOLD, at its 32 MiB maximum


def chaotic_mlp(features: int, hidden: int) -> nn.Module:
    model = nn.Sequential(
        nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, features), nn.Tanh()
    )
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)  # gain 4: chaotic, so converged() never fires within 200 steps
    return model.eval()


def hand_loop(model: nn.Module, x: torch.Tensor, *, guard: bool = False) -> torch.Tensor:
    outputs = []
    for t in range(STEPS):
        x = model(x)  # x: [B, D]
        if guard and not torch.isfinite(x).all().item():  # the naive guard: a sync a step
            raise RuntimeError(f"non-finite output at step {t}")
        outputs.append(x)
    return torch.stack(outputs)  # [T, B, D]


def hand_loop_last(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    for _ in range(STEPS):
        x = model(x)
    return x


def hand_loop_until(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Stop once every sample has converged, read on the host every step."""
    outputs, is_done = [], loopline.converged()
    for _ in range(STEPS):
        y = model(x)
        outputs.append(y)
        if is_done(y, x).all().item():
            break
        x = y
    return torch.stack(outputs)


def variants(model: nn.Module, x0: torch.Tensor) -> dict[str, Callable[[], Any]]:
    def run(**options: Any) -> Callable[[], Any]:
        return lambda: loopline.rollout(model, x0, STEPS, **options)

    return {
        "hand": lambda: hand_loop(model, x0),
        "control": lambda: hand_loop(model, x0),
        "ignore": run(on_nonfinite="ignore"),
        "raise": run(),
        "naive": lambda: hand_loop(model, x0, guard=True),
        "hand last": lambda: hand_loop_last(model, x0),
        "last": run(keep="last"),
        "hand until": lambda: hand_loop_until(model, x0),
        "until": run(until=loopline.converged()),
    }


def timed(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """µs per step of each variant in each round, the variants interleaved."""
    names, times = list(fns), {name: [] for name in fns}
    with torch.inference_mode():
        for _ in range(2):  # warm-up, and malloc's pools grow to these sizes
            for fn in fns.values():
                fn()
        gc.collect()
        gc.disable()  # as timeit does: a collection inside one variant would skew it
        try:
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    start = time.perf_counter()
                    fns[name]()
                    times[name].append((time.perf_counter() - start) / STEPS * 1e6)
        finally:
            gc.enable()
    return times


def check_same_outputs(model: nn.Module, x0: torch.Tensor) -> None:
    with torch.inference_mode():
        expected = hand_loop(model, x0)
        for options in ({}, {"on_nonfinite": "ignore"}, {"until": loopline.converged()}):
            trajectory = loopline.rollout(model, x0, STEPS, **options)
            assert torch.equal(trajectory.outputs, expected), options
            assert bool((trajectory.lengths == STEPS).all()), "the map converged"


def ratio(times: dict[str, list[float]], name: str, base: str = "hand") -> float:
    return statistics.median(a / b for a, b in zip(times[name], times[base], strict=True))


def cell(times: dict[str, list[float]], name: str, base: str = "hand") -> str:
    return f"{statistics.median(times[name]):.1f} ({ratio(times, name, base):.2f}x)"


def own_cost(rounds: int) -> list[list[Any]]:
    """rollout's own µs per step: with a near-free model (`neg` of a [64, 64] batch) the
    difference from the hand loop is the loop's bookkeeping, measured to a fraction of a
    µs, where whole-run ratios on a busy MLP drift by several percent with the machine."""
    x0 = torch.randn(64, 64)
    free = {
        "hand": lambda: hand_loop(torch.neg, x0),  # type: ignore[arg-type]
        "ignore": lambda: loopline.rollout(torch.neg, x0, STEPS, on_nonfinite="ignore"),
        "raise": lambda: loopline.rollout(torch.neg, x0, STEPS),
    }
    us = {name: statistics.median(t) for name, t in timed(free, rounds).items()}
    return [
        [name, f"{us[name]:.2f}", f"{us[name] - us['hand']:+.2f}"]
        for name in ("hand", "ignore", "raise")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 15 s)")
    quick = parser.parse_args().quick
    torch.set_num_threads(1)
    steady_malloc()
    started = time.perf_counter()
    guard_rows, option_rows, noise = [], [], []
    for name, features, hidden, batch, rounds in MODELS:
        torch.manual_seed(0)
        model, x0 = chaotic_mlp(features, hidden), torch.randn(batch, features)
        check_same_outputs(model, x0)
        us = timed(variants(model, x0), rounds=max(3, rounds // 6) if quick else rounds)
        hand, hand_last = (f"{statistics.median(us[v]):.1f}" for v in ("hand", "hand last"))
        guard_rows.append([name, hand, *(cell(us, v) for v in ("ignore", "raise", "naive"))])
        until = [cell(us, "hand until"), cell(us, "until")]
        option_rows.append([name, hand_last, cell(us, "last", "hand last"), *until])
        noise.append(f"{ratio(us, 'control'):.2f}x")
    own = own_cost(rounds=20 if quick else 200)
    sections = [
        settings(quick),
        "### 1. Per-step cost of rollout and of its guard, µs/step (ratio to the hand loop)\n\n"
        + table(GUARD_HEADERS, guard_rows)
        + '\n\nGoals: on_nonfinite="ignore" and the default guard ("raise") within 5% of the '
        "unguarded hand loop (1.05x). The default guard sums the outputs since its last "
        "check and reads that sum every 16 steps; the naive guard syncs every step.",
        "### 2. keep and until, µs/step (ratio to the matching hand loop)\n\n"
        + table(OPTION_HEADERS, option_rows)
        + '\n\nkeep="last" is compared with a hand loop that keeps only the last output, the '
        "until columns with the hand loop of section 1 (the map never converges, so all run "
        "200 steps); rollout runs its default guard in both.",
        f"Noise floor: a second copy of the hand loop reads {' and '.join(noise)} of the first.",
        "### 3. rollout's own cost per step, with a near-free model (`torch.neg`, [64, 64])\n\n"
        + table(["loop", "µs/step", "added to the hand loop, µs/step"], own)
        + "\n\nWhat rollout adds to every step whatever the model; divide by a model's step "
        "time for its overhead (the small MLP above takes about 155 µs).",
    ]
    publish("loopline rollout benchmark", sections, OUT, started)


if __name__ == "__main__":
    main()
