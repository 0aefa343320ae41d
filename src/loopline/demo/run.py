"""`loopline demo`: stream, train three ways, roll out, report; resumable from a checkpoint.

`run(options)` is the whole demo. Lorenz-63 (observed with noise by default, or a CSV
series) is streamed through `from_generator` with DataLoader workers and `forever`; one
small forecaster is trained per method on the same batches (`train.py`), rolled out from
held-out states and scored with the baselines (`baselines.py`, `report.py`, `figure.py`).
With a checkpoint directory, progress is saved every few steps and a rerun with the same
options goes on from the last save, bitwise as if never stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from loopline.demo import baselines, models, report, tasks
from loopline.demo import checkpoint as ckpt
from loopline.demo.figure import figure
from loopline.demo.lorenz import LYAPUNOV_STEPS
from loopline.demo.preflight import DemoError, check_paths, checkpoint_lock, resume_state
from loopline.demo.train import METHODS, one_step_steps, train

DEFAULT_NOISE = 0.02  # Lorenz-63's observation noise, in units of each coordinate's spread
FORK = "fork"  # checkpoint key: the state where the one-step phase ends (see train.py)
# In every checkpoint's config: one made by another training recipe does not resume.
RECIPE = "3/4 one-step, shared, then each method's own loss; quadratic field by RK4 or MLP"


def as_numpy(batch: Any) -> Any:
    """The DataLoader's `collate_fn`: a batch this small crosses from a worker faster
    pickled by value as a numpy array than moved into shared memory as a tensor (one
    file descriptor sent per batch): 300 against 760 us a batch of 32 windows, measured.
    """
    return batch.numpy()


@dataclass
class Options:
    """The demo's settings (the CLI's flags)."""

    steps: int = 3000
    batch_size: int = 256
    window: int = 8
    horizon: int | None = None  # steps rolled out: 1656 (15 LT) for Lorenz, 100 for a CSV
    lr: float = 5e-3
    noise: float | None = None  # Lorenz-63's observation noise; None: DEFAULT_NOISE
    season: int | None = None  # a CSV series' period, for the seasonal naive baseline
    model: str | None = None  # the forecaster, one of models.MODELS; None: the task's own
    seed: int = 0
    device: str | None = None  # cuda when available, else cpu
    workers: int = 2
    out: Path = Path("loopline-demo")
    quiet: bool = False
    checkpoint: Path | None = None
    checkpoint_every: int = 200
    csv: Path | None = None
    columns: list[str] = field(default_factory=list)
    time_column: str | None = None

    def validate(self) -> None:
        """Check that the data options fit together; `run` calls it first.

        Raises:
            DemoError: a column without a CSV file, a CSV file without a column, a
                column that is also the time column, a season without a CSV file, noise
                with one, noise that is negative, or an unknown model.

        Example:
            >>> Options(columns=["x"]).validate()
            Traceback (most recent call last):
            ...
            loopline.demo.preflight.DemoError: --column and --time-column need --csv FILE
        """
        if self.csv is None and (self.columns or self.time_column):
            raise DemoError("--column and --time-column need --csv FILE")
        if self.csv is not None and not self.columns:
            raise DemoError(f"--csv {self.csv} needs --column NAME: the column(s) to forecast")
        if self.time_column is not None and self.time_column in self.columns:
            raise DemoError(
                f"column {self.time_column!r} cannot be both --column and --time-column"
            )
        if self.season is not None and self.season < 1:
            raise DemoError(f"--season {self.season}: expected a whole number >= 1")
        if self.season is not None and self.csv is None:
            raise DemoError(f"--season {self.season} needs --csv FILE: Lorenz-63 has no season")
        if self.model is not None and self.model not in models.MODELS:
            raise DemoError(f"--model {self.model!r}: expected one of {', '.join(models.MODELS)}")
        if self.noise is not None and not (math.isfinite(self.noise) and self.noise >= 0):
            raise DemoError(f"--noise {self.noise:g}: expected a finite number >= 0")
        if self.csv is not None and self.noise:
            raise DemoError(
                f"--noise {self.noise:g} adds noise to Lorenz-63's observations; with --csv "
                "the series is trained on as it is"
            )


def run(options: Options) -> list[report.Result]:
    """Run the demo, printing its table and figure path; returns each method's result,
    then each baseline's.

    Raises:
        DemoError: unusable options, data or checkpoint (the message says which).
    """
    started = time.perf_counter()
    options.validate()
    device = _device(options.device)
    check_paths(options.out, options.checkpoint)  # unusable paths first: they cost nothing
    task = _task(options, not options.quiet)  # errors in the data surface before any output
    with checkpoint_lock(options.checkpoint):  # and a directory in use before any training
        saved = resume_state(options.checkpoint, _config(options, task))
        return _run(options, task, device, saved, started)


def _run(
    options: Options,
    task: tasks.Task,
    device: torch.device,
    saved: dict[str, Any] | None,
    started: float,
) -> list[report.Result]:
    shared = one_step_steps(options.steps)
    forecaster = _forecaster(options, task)
    print(
        f"loopline demo: {task.title}\n{len(METHODS)} methods x {options.steps:,} steps "
        f"(the first {shared:,} one-step, shared), batches of {options.batch_size} windows "
        f"of {options.window} steps, {options.workers} DataLoader workers, {device}, "
        f"seed {options.seed}\nforecaster: {models.describe(forecaster, len(task.features))} "
        f"(--model {forecaster})"
    )
    loader = DataLoader(
        task.dataset,
        batch_size=None,  # the generator yields whole batches
        collate_fn=as_numpy,
        num_workers=options.workers,
    )
    if saved is not None:
        print(f"resuming from {options.checkpoint}: {ckpt.describe(saved)}")
    results = []
    threads = torch.get_num_threads()
    # A model this small runs fastest on one thread, which leaves the other cores to the
    # DataLoader workers and fixes the reduction order, so that reruns repeat bitwise.
    torch.set_num_threads(1)
    try:
        done: dict[str, Any] = dict(saved[ckpt.DONE]) if saved is not None else {}
        fork: dict[str, Any] = {FORK: saved.get(FORK) if saved is not None else None}
        for method in METHODS:
            if method not in done:  # trained by an earlier run of this checkpoint otherwise
                resume = saved if saved is not None and saved[ckpt.METHOD] == method else None
                if resume is None and method != METHODS[0]:
                    resume = fork[FORK]  # the one-step phase, trained once by the first
                done[method] = _train(method, loader, task, options, device, resume, done, fork)
            model = models.build(forecaster, len(task.features)).to(device)
            model.load_state_dict(done[method][ckpt.MODEL])
            seconds, samples = done[method][ckpt.SECONDS], done[method][ckpt.SAMPLES]
            cost = {"steps": options.steps, "seconds": seconds, "samples": samples}
            results.append(report.evaluate(method, model.eval(), task, **cost))
        results += [report.evaluate_baseline(b, task) for b in baselines.baselines(task)]
    finally:
        torch.set_num_threads(threads)
    print(report.table(results, task))
    print(report.notes(task))
    print(report.cost(results, shared=fork[FORK][ckpt.SECONDS] if fork[FORK] else 0.0))
    print(report.verdict(results, task))
    name = "lorenz.png" if options.csv is None else f"{options.csv.stem}.png"
    path = figure(results, task, options.out / name)
    if path is not None:
        print(f"figure: {path}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return results


def _train(
    method: str,
    loader: DataLoader,
    task: tasks.Task,
    options: Options,
    device: torch.device,
    resume: dict[str, Any] | None,
    done: dict[str, Any],
    fork: dict[str, Any],
) -> dict[str, Any]:
    """Train `method` (from `resume` if given), saving checkpoints along the way; returns
    its entry of the checkpoint's `DONE`. The first method fills `fork[FORK]`."""
    config = _config(options, task)

    def save(state: dict[str, Any]) -> None:
        _save(options, config, done, method, {**state, FORK: fork[FORK]})

    def keep(state: dict[str, Any]) -> None:
        fork[FORK] = state

    trained = train(
        method,
        loader,
        dim=len(task.features),
        steps=options.steps,
        seed=options.seed,
        forecaster=_forecaster(options, task),
        sample=task.observed,
        lr=options.lr,
        device=device,
        resume=resume,
        save=save if options.checkpoint is not None else None,
        save_every=options.checkpoint_every,
        fork=keep if method == METHODS[0] else None,
        show=not options.quiet,
    )
    entry = {
        ckpt.MODEL: {name: value.cpu() for name, value in trained.model.state_dict().items()},
        ckpt.SECONDS: trained.seconds,
        ckpt.SAMPLES: trained.samples,
    }
    if options.checkpoint is not None:
        _save(options, config, {**done, method: entry}, None, {FORK: fork[FORK]})
    return entry


def _device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DemoError(
            f"--device {name!r} is not a device torch knows (try cpu or cuda)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DemoError(f"--device {name}: CUDA is not available here; use --device cpu")
    return device


def _task(options: Options, show: bool) -> tasks.Task:
    try:
        if options.csv is None:
            return tasks.lorenz_task(
                window=options.window,
                batch=options.batch_size,
                horizon=options.horizon or round(15 * LYAPUNOV_STEPS),
                seed=options.seed,
                noise=DEFAULT_NOISE if options.noise is None else options.noise,
                history=baselines.history_needed(None),
                show=show,
            )
        return tasks.csv_task(
            options.csv,
            options.columns,
            time_column=options.time_column,
            window=options.window,
            batch=options.batch_size,
            horizon=options.horizon or 100,
            seed=options.seed,
            season=options.season,
            history=baselines.history_needed(options.season),
        )
    except (tasks.TaskError, tasks.series.SeriesError) as error:
        raise DemoError(str(error)) from None


def _forecaster(options: Options, task: tasks.Task) -> str:
    """The model to train: `--model`, or the task's own (quadratic for Lorenz-63)."""
    return options.model if options.model is not None else task.model


def _config(options: Options, task: tasks.Task) -> dict[str, Any]:
    """The options a checkpoint must share with the run that resumes it."""
    return {
        **task.identity,
        "recipe": RECIPE,
        "model": _forecaster(options, task),
        "steps": options.steps,
        "batch_size": options.batch_size,
        "window": options.window,
        "lr": options.lr,
        "seed": options.seed,
        "workers": options.workers,
    }


def _save(
    options: Options,
    config: dict[str, Any],
    done: dict[str, Any],
    method: str | None,
    state: dict[str, Any],
) -> None:
    assert options.checkpoint is not None
    ckpt.save(
        options.checkpoint, {ckpt.CONFIG: config, ckpt.DONE: done, ckpt.METHOD: method, **state}
    )
