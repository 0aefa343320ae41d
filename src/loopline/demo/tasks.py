"""What the demo forecasts: Lorenz-63 (the default) or a user's CSV series, as a `Task`.

A task gives the training stream's dataset (batches of windows `[B, W + 1, D]` from a
generator, so `forever` can resume it), held-out trajectories to roll out from their
first state with the observations before it (for the baselines), a sample of the
training data as observed (to fit them), the normalization to undo for plots, and how to
report time: Lorenz-63 in Lyapunov times, a CSV series in rows or in the units of its
time column.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from loopline import GeneratorDataset, Shard, from_generator
from loopline.demo import lorenz, series
from loopline.demo._progress import progress

# Lorenz trajectories each shard integrates per epoch, and their length after the
# spin-up: many, since an RK4 step costs about the same for 1 or 2048 states (130 to
# 220 us here, against 450 for 4096): 0.05 ms of a worker per batch of 256 windows.
TRAJECTORIES_PER_SHARD = 2048
TRAJECTORY_STEPS = 1000
FITTED_TRAJECTORIES = 512  # of the first shard's, to fit the baselines on
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
        history: `[P, B, D]` the P observations before each `test[0]` (P may be 0).
        observed: `[T, N, D]` N training series as the models see them (noise included),
            for fitting the baselines.
        mean, std: `[D]`, to turn normalized values back into the data's units.
        dt: time per step, in `unit`.
        unit: the short name of the time unit: "LT", "steps", or a time column's unit.
        horizons: the steps at which the demo's table shows the error.
        unit_name: the unit in words ("Lyapunov times"), for the notes to spell out the
            rollouts' length; None where `unit` says it already.
        time_format: the format of the times in the table's header.
        season: the period of the seasonal naive baseline, in steps; None: no such row.
        model: the forecaster the demo trains unless told otherwise (`models.MODELS`).
        identity: what a checkpoint must match to resume on this data.
    """

    title: str
    features: list[str]
    dataset: GeneratorDataset
    test: torch.Tensor
    history: torch.Tensor
    observed: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    dt: float
    unit: str
    horizons: list[int]
    unit_name: str | None = None
    time_format: str = ".4g"
    season: int | None = None
    model: str = "mlp"
    identity: dict[str, Any] = field(default_factory=dict)


def lorenz_task(
    *,
    window: int,
    batch: int,
    horizon: int,
    seed: int,
    noise: float = 0.0,
    history: int = 0,
    show: bool = True,
) -> Task:
    """Lorenz-63: new trajectories per shard and epoch, observed with `noise`, and 128
    clean held-out ones, each with the `history` states before its first.

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
        noise,
        sharded=True,
        batched=True,
        seekable=True,
        seed=seed,
    )
    bar = progress(lorenz.SPIN_UP + history + horizon, "held-out trajectories", enabled=show)
    try:
        test = lorenz.held_out(TEST_TRAJECTORIES, history + horizon, seed=seed, callback=bar.update)
    finally:
        bar.close()
    # The first shard's data of the first epoch, as the models see it, for the baselines:
    # 512 of its trajectories, plenty for a fit of 13 numbers a feature.
    generator = lorenz.shard_generator(Shard(seed=seed))
    observed = lorenz.observe(TRAJECTORIES_PER_SHARD, TRAJECTORY_STEPS, noise, generator)
    observed = observed[:, :FITTED_TRAJECTORIES]
    return Task(
        title=f"Lorenz-63 (RK4, dt {lorenz.DT}), "
        + (
            f"trained on observations with noise {noise:g}, scored against the clean truth"
            if noise > 0
            else "trained and scored on clean states"
        ),
        features=["x", "y", "z"],
        dataset=dataset,
        test=test[history:],
        history=test[:history],
        observed=observed,
        mean=torch.tensor(lorenz.MEAN),
        std=torch.tensor(lorenz.STD),
        dt=1 / lorenz.LYAPUNOV_STEPS,
        unit="LT",
        horizons=_within([round(t * lorenz.LYAPUNOV_STEPS) for t in (1, 2, 4, 8)], horizon),
        unit_name="Lyapunov times",
        time_format=".2g",
        model="quadratic",  # the form of Lorenz-63's own equations
        identity={"data": "lorenz-63", "noise": noise},
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
    season: int | None = None,
    history: int = 0,
) -> Task:
    """A CSV series: windows of its first four fifths train, rollouts test on the rest,
    each with the `history` rows before its first.

    Raises:
        SeriesError: the file cannot be read as the series, or it is too short.
        TaskError: a `season` longer than the training rows.
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
    if season is not None and season > rows - held:
        raise TaskError(
            f"--season {season} is longer than the {rows - held} training rows of {path} "
            f"({rows} rows, the last {held} held out); use at most {rows - held}"
        )
    train, rest = data.values[: rows - held], data.values[rows - held :]  # [N, D]
    mean, std = _scale(path, columns, train)
    train, rest = ((train - mean) / std).float(), ((rest - mean) / std).float()
    for name, part in (("training", train), ("held-out", rest)):
        _check_finite(path, columns, part, name)
    horizon = min(horizon, held - 1)
    count = min(MAX_TEST_STARTS, held - horizon)
    starts = torch.linspace(0, held - 1 - horizon, count).round().long().unique()  # [B]
    test = rest[starts[None] + torch.arange(horizon + 1)[:, None]]  # [H+1, B, D]
    whole = torch.cat([train, rest])  # [N, D]; rows - held + starts index test[0]
    before = rows - held + starts[None] - history + torch.arange(history)[:, None]  # [P, B]
    dataset = from_generator(series.windows, train, window, batch, batched=True, seed=seed)
    digest = hashlib.sha256(data.values.numpy().tobytes()).hexdigest()[:16]
    return Task(
        title=f"{path}: {_names(columns)}, {rows} rows ({rows - held} train, {held} held out)",
        features=list(columns),
        dataset=dataset,
        test=test,
        history=whole[before],
        observed=train[:, None],
        mean=mean.float(),
        std=std.float(),
        dt=data.dt,
        unit=data.unit,
        horizons=_within([1, horizon // 4, horizon // 2, horizon], horizon),
        season=season,
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
