"""The demo's figure: how the error grows with the horizon, and one forecast against the truth.

Left, each forecast's error against the horizon over the held-out rollouts: the median as
a line, the 25th to 75th percentiles as a band (baselines: the median only, dashed), the
validity threshold, and each trained method's median valid time as a dotted line.
Right, one held-out rollout (the one where the best method's valid time is its median)
against the truth, for as long as the best method stays valid there. matplotlib is
imported only here, and its absence skips the figure with a message.
"""

from __future__ import annotations

from pathlib import Path

import torch

from loopline.demo.report import THRESHOLD, Result, best
from loopline.demo.tasks import Task


def figure(results: list[Result], task: Task, path: Path) -> Path | None:
    """Save the two panels as a PNG at `path`.

    Returns:
        `path`, or None when matplotlib is not installed (a message says so).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print('figure skipped: matplotlib is not installed (pip install "loopline[plots]")')
        return None
    fig = Figure(figsize=(13, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    _errors(left, results, task)
    _trajectory(right, results, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def _errors(ax, results: list[Result], task: Task) -> None:  # type: ignore[no-untyped-def]
    """Median and interquartile band of the per-rollout RMSE, threshold, valid times."""
    unit = task.unit
    time = [(t + 1) * task.dt for t in range(len(task.test) - 1)]
    for r in results:
        # A rollout that blew up (NaN) is off the chart, not left out.
        errors = r.per_sample.double().nan_to_num(nan=1e9, posinf=1e9)  # [H, B]
        quartiles = torch.quantile(errors, torch.tensor([0.25, 0.5, 0.75]).double(), dim=1)
        low, median, high = (q.tolist() for q in quartiles)  # [H] each
        if r.baseline:
            ax.plot(time, median, linestyle="--", linewidth=1, label=f"{r.method} (baseline)")
            continue
        valid = float(r.valid.median())
        (line,) = ax.plot(time, median, linewidth=2, label=f"{r.method}: valid {valid:.2f} {unit}")
        ax.fill_between(time, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.axvline(valid, color=line.get_color(), linestyle=":", linewidth=1.5)
    ax.axhline(THRESHOLD, color="gray", linestyle="--", linewidth=1, label=f"threshold {THRESHOLD}")
    ax.set_ylim(0, 2.5 * THRESHOLD)
    # Out to 2.5 times the best median valid time: past it, every forecast is noise.
    longest = max((float(r.valid.median()) for r in results if not r.baseline), default=0.0)
    ax.set_xlim(0, min(time[-1], 2.5 * longest) if longest > 0 else time[-1])
    ax.set_xlabel(f"horizon ({unit})")
    ax.set_ylabel("RMSE (normalized)")
    count = len(task.test[0])
    ax.set_title(
        f"error against horizon, {count} held-out rollout{'s' if count != 1 else ''}: "
        "median, 25-75%"
    )
    ax.legend(fontsize="small", loc="lower right", title="dotted: median valid time")


def _trajectory(ax, results: list[Result], task: Task) -> None:  # type: ignore[no-untyped-def]
    """One rollout of every trained method against the truth, while the best is valid."""
    trained = [r for r in results if not r.baseline]
    top = best(trained)
    order = torch.argsort(top.valid, stable=True)
    sample = int(order[len(order) // 2])  # a typical rollout: the best's median one
    valid = float(top.valid[sample])
    horizon = len(task.test) - 1
    steps = min(horizon, round(valid / task.dt)) if valid > 0 else horizon
    steps = max(steps, min(horizon, 2))
    time = [(t + 1) * task.dt for t in range(steps)]
    scale, shift = float(task.std[0]), float(task.mean[0])
    truth = task.test[1 : steps + 1, sample, 0] * scale + shift
    ax.plot(time, truth.tolist(), color="black", linewidth=2.5, label="truth")
    for r in trained:
        ax.plot(time, (r.outputs[:steps, sample, 0] * scale + shift).tolist(), label=r.method)
    ax.set_xlabel(f"time ({task.unit})")
    ax.set_ylabel(task.features[0])
    ax.set_title(
        f"rollout {sample}: {task.features[0]} while {top.method} is valid "
        f"({valid:.2f} {task.unit})"
    )
    ax.legend(fontsize="small", loc="upper left")
