"""How well each forecast does: rollouts from held-out states, a table and its verdict.

`evaluate` rolls a trained model out on its own outputs from the first state of every
held-out trajectory, and `evaluate_baseline` a baseline the same way, from the same
states with the observations before them; both score the rollouts against the truth:
the RMSE (normalized units) at each step, and each trajectory's valid time, the time
until its error first exceeds `THRESHOLD`. `table` lays the results side by side with
what training cost, and `verdict` says which is best and by how much against the best
baseline. The figure is drawn by `figure.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from loopline import horizon_error, rollout, valid_time
from loopline.demo.baselines import Baseline
from loopline.demo.tasks import Task

THRESHOLD = 0.5  # normalized RMSE beyond which a forecast no longer counts as valid


@dataclass
class Result:
    """One method's or baseline's scores.

    Attributes:
        method: its name.
        errors: `[H]` RMSE over the held-out batch at each step (normalized units).
        per_sample: `[H, B]` each held-out rollout's RMSE at each step.
        valid: `[B]` each held-out rollout's valid time, in the task's unit.
        outputs: `[H, B, D]` the forecasts (normalized).
        steps, seconds, samples: training steps, seconds and windows seen; None for a
            baseline (fitted, not trained: `seconds` is then its fitting time).
    """

    method: str
    errors: torch.Tensor
    per_sample: torch.Tensor
    valid: torch.Tensor
    outputs: torch.Tensor
    steps: int | None = None
    seconds: float = 0.0
    samples: int | None = None

    @property
    def baseline(self) -> bool:
        return self.steps is None

    def rank(self) -> tuple[float, float]:
        """What `verdict` orders by: the median valid time, then the mean."""
        return float(self.valid.median()), float(self.valid.mean())


def evaluate(
    method: str,
    model: torch.nn.Module,
    task: Task,
    *,
    steps: int,
    seconds: float,
    samples: int,
) -> Result:
    """Roll `model` out from every `task.test[0]` and score it against `task.test[1:]`."""
    device = next(model.parameters()).device
    result = _score(method, model, task, None, device)
    result.steps, result.seconds, result.samples = steps, seconds, samples
    return result


def evaluate_baseline(baseline: Baseline, task: Task) -> Result:
    """Roll `baseline` out from the same states as the models, with its history."""
    result = _score(baseline.name, baseline.forecast, task, baseline.state, torch.device("cpu"))
    result.seconds = baseline.seconds
    return result


def _score(
    name: str, forecast: Callable[..., Any], task: Task, state: Any, device: torch.device
) -> Result:
    test = task.test.to(device)
    truth = test[1:]  # [H, B, D]
    # A forecast that blows up is kept as NaN: valid_time counts it as past the threshold.
    outputs = rollout(forecast, test[0], len(truth), state=state, on_nonfinite="ignore").outputs
    assert outputs is not None
    per_sample = horizon_error(outputs, truth, per_sample=True)  # [H, B]
    valid = valid_time(per_sample, THRESHOLD, dt=task.dt).double()  # [B]
    errors = horizon_error(outputs, truth)  # [H]
    return Result(name, errors.cpu(), per_sample.cpu(), valid.cpu(), outputs.cpu())


def table(results: list[Result], task: Task) -> str:
    """A Markdown table: error at a few horizons, valid time, what training cost."""
    unit = task.unit
    headers = [
        "method",
        *(f"RMSE @{h * task.dt:{task.time_format}} {unit}" for h in task.horizons),
        f"valid mean ({unit})",
        f"valid median ({unit})",
        "steps",
        "train s",
        "samples/s",
    ]
    rows = [
        [
            r.method if not r.baseline else f"{r.method} (baseline)",
            *(_error(float(r.errors[h - 1])) for h in task.horizons),
            f"{float(r.valid.mean()):.2f}",
            f"{float(r.valid.median()):.2f}",
            "-" if r.steps is None else f"{r.steps:,}",
            f"{r.seconds:.1f}" if not r.baseline else "-",
            "-" if r.samples is None else f"{r.samples / max(r.seconds, 1e-9):,.0f}",
        ]
        for r in results
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def _error(value: float) -> str:
    """An RMSE for the table; one that blew up (a linear AR can) stays short."""
    return f"{value:.3f}" if value < 1000 else f"{value:.1e}"


def best(results: list[Result], *, baseline: bool | None = None) -> Result:
    """The result with the longest median valid time (then mean), among the baselines
    only, the trained methods only, or all (`baseline=None`)."""
    pool = [r for r in results if baseline is None or r.baseline == baseline]
    return max(pool, key=Result.rank)


def verdict(results: list[Result], task: Task) -> str:
    """One line: the best forecast, and how it compares with the best baseline.

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> def result(name, valid, steps):
        ...     v = torch.tensor(valid, dtype=torch.float64)
        ...     return Result(name, v, v, v, v, steps=steps)
        >>> runs = [result("unroll", [3.0, 4.0, 5.0], 10), result("persistence", [1.0], None)]
        >>> verdict(runs, SimpleNamespace(unit="LT"))
        'best: unroll, median valid time 4.00 LT, 4.00x the best baseline (persistence, 1.00 LT)'
    """
    unit = task.unit
    model, base = best(results, baseline=False), best(results, baseline=True)
    mine, theirs = model.rank()[0], base.rank()[0]
    if mine == theirs:
        return (
            f"best: {model.method} and {base.method} (a baseline) tie at a median valid time "
            f"of {mine:.2f} {unit} (mean {model.rank()[1]:.2f} against {base.rank()[1]:.2f})"
        )
    if mine > theirs:
        lead = f"{mine / theirs:.2f}x" if theirs > 0 else f"{mine - theirs:.2f} {unit} more than"
        return (
            f"best: {model.method}, median valid time {mine:.2f} {unit}, {lead} the best "
            f"baseline ({base.method}, {theirs:.2f} {unit})"
        )
    return (
        f"best: {base.method} (a baseline), median valid time {theirs:.2f} {unit}; the best "
        f"trained method, {model.method}, reaches {mine / theirs:.2f}x of it ({mine:.2f} {unit})"
    )


def cost(results: list[Result], shared: float) -> str:
    """One line: the training time of all methods together, the shared phase counted once.

    Example:
        >>> import torch
        >>> runs = [Result(m, *[torch.zeros(1)] * 4, 100, s, 10) for m, s in [("a", 3), ("b", 5)]]
        >>> cost(runs, shared=2.0)
        'training: 6.0 s in all, the shared one-step phase (2.0 s) once, then a 1.0 s, b 3.0 s'
    """
    trained = [r for r in results if not r.baseline]
    own = [(r.method, r.seconds - shared) for r in trained]
    total = shared + sum(seconds for _, seconds in own)
    each = ", ".join(f"{method} {seconds:.1f} s" for method, seconds in own)
    return (
        f"training: {total:.1f} s in all, the shared one-step phase ({shared:.1f} s) once, "
        f"then {each}"
    )


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
