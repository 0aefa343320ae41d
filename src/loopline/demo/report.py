"""How well each method forecasts: rollouts from held-out states, a table and a figure.

`evaluate` rolls a trained model out on its own outputs from the first state of every
held-out trajectory and scores it against the rest: the RMSE (normalized units) at each
step, and each trajectory's valid time, the time until that error first exceeds
`THRESHOLD`. `table` lays the results side by side with the training throughput;
`figure` draws the error curves and one trajectory against the truth (matplotlib is
imported only there, and its absence skips the figure with a message).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from loopline import horizon_error, plot_horizon, rollout, valid_time
from loopline.demo.tasks import Task

THRESHOLD = 0.5  # normalized RMSE beyond which a forecast no longer counts as valid


@dataclass
class Result:
    """One method's scores.

    Attributes:
        method: its name.
        errors: `[H]` RMSE over the held-out batch at each step (normalized units).
        valid: `[B]` each held-out trajectory's valid time, in the task's unit.
        example: `[H, D]` the forecast of the first held-out trajectory.
        seconds, samples: training time and windows seen (for the throughput).
    """

    method: str
    errors: torch.Tensor
    valid: torch.Tensor
    example: torch.Tensor
    seconds: float
    samples: int


def evaluate(
    method: str, model: torch.nn.Module, task: Task, *, seconds: float, samples: int
) -> Result:
    """Roll `model` out from every `task.test[0]` and score it against `task.test[1:]`."""
    device = next(model.parameters()).device
    test = task.test.to(device)
    truth = test[1:]  # [H, B, D]
    # A forecast that blows up is kept as NaN: valid_time counts it as past the threshold.
    outputs = rollout(model, test[0], len(truth), on_nonfinite="ignore").outputs
    assert outputs is not None
    per_sample = horizon_error(outputs, truth, per_sample=True)  # [H, B]
    valid = valid_time(per_sample, THRESHOLD, dt=task.dt).double()  # [B]
    errors = horizon_error(outputs, truth)  # [H]
    return Result(method, errors.cpu(), valid.cpu(), outputs[:, 0].cpu(), seconds, samples)


def table(results: list[Result], task: Task) -> str:
    """A Markdown table: error at a few horizons, valid time, throughput."""
    unit = task.unit
    headers = [
        "method",
        *(f"RMSE @{h * task.dt:{task.time_format}} {unit}" for h in task.horizons),
        f"valid mean ({unit})",
        f"valid median ({unit})",
        "train s",
        "samples/s",
    ]
    rows = [
        [
            r.method,
            *(f"{float(r.errors[h - 1]):.3f}" for h in task.horizons),
            f"{float(r.valid.mean()):.2f}",
            f"{float(r.valid.median()):.2f}",
            f"{r.seconds:.1f}",
            f"{r.samples / max(r.seconds, 1e-9):,.0f}",
        ]
        for r in results
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def notes(task: Task) -> str:
    """What the table's columns mean, for this task."""
    count, steps = len(task.test[0]), len(task.test) - 1
    rollouts = f"{count} held-out rollout{'s' if count != 1 else ''} of {steps} steps"
    if task.unit_name is not None:
        rollouts += f" ({steps * task.dt:.3g} {task.unit_name}, {task.unit})"
    return (
        f"RMSE: normalized units, over {rollouts}.\nvalid: time until a rollout's RMSE "
        f"first exceeds {THRESHOLD}; samples/s: training windows per second, loading included."
    )


def figure(results: list[Result], task: Task, path: Path) -> Path | None:
    """Save error against horizon and one forecast against the truth as a PNG.

    Returns:
        `path`, or None when matplotlib is not installed (a message says so).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print('figure skipped: matplotlib is not installed (pip install "loopline[plots]")')
        return None
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    curves = {r.method: r.errors for r in results}
    plot_horizon(curves, ax=left, dt=task.dt, threshold=THRESHOLD)
    left.set_xlabel(f"horizon ({task.unit})")
    left.set_ylabel("RMSE (normalized)")
    count = len(task.test[0])
    left.set_title(f"error against horizon ({count} held-out rollout{'s' if count != 1 else ''})")
    # One trajectory in the data's own units, long enough to see where each departs.
    steps = len(task.test) - 1
    if task.example_span is not None:
        steps = min(steps, round(task.example_span / task.dt))
    time = [(t + 1) * task.dt for t in range(steps)]
    scale, shift = float(task.std[0]), float(task.mean[0])
    truth = task.test[1 : steps + 1, 0, 0] * scale + shift
    right.plot(time, truth.tolist(), color="black", linewidth=2, label="truth")
    for r in results:
        right.plot(time, (r.example[:steps, 0] * scale + shift).tolist(), label=r.method)
    right.set_xlabel(f"time ({task.unit})")
    right.set_ylabel(task.features[0])
    right.set_title(f"held-out rollout 0: {task.features[0]}")
    right.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
