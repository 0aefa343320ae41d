"""What the demo forecasts: Lorenz-63 (the default) or a user's CSV series, as a `Task`.

A task gives the training stream's dataset (batches of windows `[B, W + 1, D]` from a
generator, so
`forever` can resume it), held-out trajectories to roll out from their first state, the
normalization to undo for plots, and how to report time: Lorenz-63 in Lyapunov times, a
CSV series in rows or in the units of its time column.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from loopline import GeneratorDataset, from_generator
from loopline.demo import lorenz, series
from loopline.demo._progress import progress

TRAJECTORIES_PER_SHARD = 128  # Lorenz trajectories each shard integrates per epoch
TRAJECTORY_STEPS = 500  # their length after the spin-up
TEST_TRAJECTORIES = 128
MAX_TEST_STARTS = 32  # rollouts from a CSV series' held-out part
TEST_FRACTION = 5  # a CSV series' last fifth is held out


class TaskError(ValueError):
    """Options that the task cannot honour; the message names them."""


@dataclass
class Task:
    """A forecasting problem, normalized.

    Attributes:
        title: one line saying what is forecast.
        features: the D feature names.
        dataset: batches of training windows `[B, W + 1, D]`, a `from_generator` dataset.
        test: `[H + 1, B, D]` held-out trajectories; rollouts start from `test[0]`.
        mean, std: `[D]`, to turn normalized values back into the data's units.
        dt: time per step, in `unit`.
        unit: the short name of the time unit: "LT", "steps", or a time column's unit.
        horizons: the steps at which the demo's table shows the error.
        unit_name: the unit in words ("Lyapunov times"), for the notes to spell out the
            rollouts' length; None where `unit` says it already.
        time_format: the format of the times in the table's header.
        example_span: the time shown of the figure's example rollout; None: all of it.
        identity: what a checkpoint must match to resume on this data.
    """

    title: str
    features: list[str]
    dataset: GeneratorDataset
    test: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    dt: float
    unit: str
    horizons: list[int]
    unit_name: str | None = None
    time_format: str = ".4g"
    example_span: float | None = None
    identity: dict[str, Any] = field(default_factory=dict)


def lorenz_task(*, window: int, batch: int, horizon: int, seed: int, show: bool = True) -> Task:
    """Lorenz-63: new trajectories per shard and epoch, and 128 held-out ones.

    Raises:
        TaskError: a window or batch too large for one shard's trajectories.
    """
    if window > TRAJECTORY_STEPS // 5:
        raise TaskError(
            f"--window {window} is too long for Lorenz-63 trajectories of {TRAJECTORY_STEPS} "
            f"steps; use at most {TRAJECTORY_STEPS // 5}"
        )
    windows = TRAJECTORIES_PER_SHARD * (TRAJECTORY_STEPS - window + 1)
    if batch > windows:
        raise TaskError(f"--batch-size {batch} is more than the {windows} windows of an epoch")
    dataset = from_generator(
        lorenz.windows,
        TRAJECTORIES_PER_SHARD,
        TRAJECTORY_STEPS,
        window,
        batch,
        sharded=True,
        batched=True,
        seed=seed,
    )
    bar = progress(lorenz.SPIN_UP + horizon, "held-out trajectories", enabled=show)
    try:
        test = lorenz.held_out(TEST_TRAJECTORIES, horizon, seed=seed, callback=bar.update)
    finally:
        bar.close()
    return Task(
        title=f"Lorenz-63 (RK4, dt {lorenz.DT})",
        features=["x", "y", "z"],
        dataset=dataset,
        test=test,
        mean=torch.tensor(lorenz.MEAN),
        std=torch.tensor(lorenz.STD),
        dt=1 / lorenz.LYAPUNOV_STEPS,
        unit="LT",
        horizons=_within([round(t * lorenz.LYAPUNOV_STEPS) for t in (0.5, 1, 2)], horizon),
        unit_name="Lyapunov times",
        time_format=".2g",
        example_span=6.0,
        identity={"data": "lorenz-63"},
    )


def csv_task(
    path: str | Path,
    columns: list[str],
    *,
    time_column: str | None,
    window: int,
    batch: int,
    horizon: int,
    seed: int,
) -> Task:
    """A CSV series: windows of its first four fifths train, rollouts test on the rest.

    Raises:
        SeriesError: the file cannot be read as the series, or it is too short.
    """
    data = series.load_csv(path, columns, time_column)
    rows, needed = len(data.values), TEST_FRACTION * (window + 1)
    if rows < needed:
        raise series.SeriesError(
            f"{path} has {rows} data rows in {_names(columns)}; the demo needs at least "
            f"{needed} with --window {window}: windows of {window + 1} rows to train on, "
            f"and the last fifth (at least {window + 1} rows) held out to test"
        )
    held = rows // TEST_FRACTION
    train, rest = data.values[: rows - held], data.values[rows - held :]  # [N, D]
    mean, std = _scale(path, columns, train)
    train, rest = ((train - mean) / std).float(), ((rest - mean) / std).float()
    for name, part in (("training", train), ("held-out", rest)):
        _check_finite(path, columns, part, name)
    horizon = min(horizon, held - 1)
    count = min(MAX_TEST_STARTS, held - horizon)
    starts = torch.linspace(0, held - 1 - horizon, count).round().long().unique()  # [B]
    test = rest[starts[None] + torch.arange(horizon + 1)[:, None]]  # [H+1, B, D]
    dataset = from_generator(series.windows, train, window, batch, batched=True, seed=seed)
    digest = hashlib.sha256(data.values.numpy().tobytes()).hexdigest()[:16]
    return Task(
        title=f"{path}: {_names(columns)}, {rows} rows ({rows - held} train, {held} held out)",
        features=list(columns),
        dataset=dataset,
        test=test,
        mean=mean.float(),
        std=std.float(),
        dt=data.dt,
        unit=data.unit,
        horizons=_within([1, horizon // 4, horizon // 2, horizon], horizon),
        identity={
            "data": f"csv {Path(path).resolve()}",
            "columns": list(columns),
            "time_column": time_column,
            "digest": digest,
        },
    )


def _scale(
    path: str | Path, columns: list[str], train: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each column's mean and standard deviation over the training rows `[N, D]`; a column
    they cannot normalise (a constant one, or one whose moments overflow) is an error."""
    mean, std = train.mean(dim=0), train.std(dim=0, correction=0)  # [D] float64
    for j, name in enumerate(columns):
        low, high = train[:, j].min().item(), train[:, j].max().item()
        if not (torch.isfinite(mean[j]) and torch.isfinite(std[j])):
            raise series.SeriesError(
                f"{path}, column {name!r}: values from {low:.4g} to {high:.4g} overflow "
                "float64 when the demo normalises them (mean or standard deviation is "
                "infinite); rescale the column"
            )
        if std[j] == 0:
            raise series.SeriesError(
                f"{path}, column {name!r}: every training row holds {low:.6g}: a constant "
                "column has zero variance and cannot be normalised; leave it out"
            )
    return mean, std


def _check_finite(path: str | Path, columns: list[str], part: torch.Tensor, name: str) -> None:
    """The normalised `[N, D]` float32 values must all be finite."""
    for j, column in enumerate(columns):
        if not torch.isfinite(part[:, j]).all():
            raise series.SeriesError(
                f"{path}, column {column!r}: normalised {name} values overflow float32 (the "
                "column's spread is too small or too large against its values); rescale it"
            )


def _within(wanted: list[int], steps: int) -> list[int]:
    """The steps of `wanted` that a rollout of `steps` steps reaches, in order, once each."""
    return sorted({h for h in wanted if 1 <= h <= steps})


def _names(columns: list[str]) -> str:
    return ", ".join(repr(name) for name in columns)
