"""`loopline demo`: stream, train three ways, roll out, report; resumable from a checkpoint.

`run(options)` is the whole demo. Lorenz-63 (or a CSV series) is streamed through
`from_generator` with DataLoader workers and `forever`; one small forecaster is trained
per method on the same batches (`train.py`), rolled out from held-out states and scored
(`report.py`). With a checkpoint directory, progress is saved every few steps and a
rerun with the same options goes on from the last save, bitwise as if never stopped.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from loopline.demo import checkpoint as ckpt
from loopline.demo import report, tasks
from loopline.demo._lock import Locked, hold
from loopline.demo.lorenz import LYAPUNOV_STEPS
from loopline.demo.train import METHODS, Forecaster, train


class DemoError(ValueError):
    """A problem with the demo's options or inputs, reported as one line."""


@dataclass
class Options:
    """The demo's settings (the CLI's flags)."""

    steps: int = 2000
    batch_size: int = 128
    window: int = 10
    horizon: int | None = None  # steps rolled out: 1104 (10 LT) for Lorenz, 100 for a CSV
    lr: float = 2e-3
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
            DemoError: a column without a CSV file, a CSV file without a column, or a
                column that is also the time column.

        Example:
            >>> Options(columns=["x"]).validate()
            Traceback (most recent call last):
            ...
            loopline.demo.run.DemoError: --column and --time-column need --csv FILE
        """
        if self.csv is None and (self.columns or self.time_column):
            raise DemoError("--column and --time-column need --csv FILE")
        if self.csv is not None and not self.columns:
            raise DemoError(f"--csv {self.csv} needs --column NAME: the column(s) to forecast")
        if self.time_column is not None and self.time_column in self.columns:
            raise DemoError(
                f"column {self.time_column!r} cannot be both --column and --time-column"
            )


def run(options: Options) -> list[report.Result]:
    """Run the demo, printing its table and figure path; returns each method's result.

    Raises:
        DemoError: unusable options, data or checkpoint (the message says which).
    """
    started = time.perf_counter()
    options.validate()
    device = _device(options.device)
    task = _task(options, not options.quiet)  # errors in the data surface before any output
    _check_out(options.out)
    with _checkpoint_lock(options.checkpoint):  # and unusable paths before any training
        saved = _resume_state(options, _config(options, task))
        return _run(options, task, device, saved, started)


def _run(
    options: Options,
    task: tasks.Task,
    device: torch.device,
    saved: dict[str, Any] | None,
    started: float,
) -> list[report.Result]:
    print(
        f"loopline demo: {task.title}\n{len(METHODS)} methods x {options.steps} steps, "
        f"batches of {options.batch_size} windows of {options.window} steps, "
        f"{options.workers} DataLoader workers, {device}, seed {options.seed}"
    )
    loader = DataLoader(
        task.dataset,
        batch_size=None,  # the generator yields whole batches
        num_workers=options.workers,
        pin_memory=device.type == "cuda",
    )
    if saved is not None:
        print(f"resuming from {options.checkpoint}: {_describe(saved)}")
    results = []
    threads = torch.get_num_threads()
    # A 64-wide MLP runs fastest on one thread, which leaves the other cores to the
    # DataLoader workers and fixes the reduction order, so that reruns repeat bitwise.
    torch.set_num_threads(1)
    try:
        done: dict[str, Any] = dict(saved[ckpt.DONE]) if saved is not None else {}
        for method in METHODS:
            if method not in done:  # trained by an earlier run of this checkpoint otherwise
                resume = saved if saved is not None and saved[ckpt.METHOD] == method else None
                done[method] = _train(method, loader, task, options, device, resume, done)
            model = Forecaster(len(task.features)).to(device)
            model.load_state_dict(done[method][ckpt.MODEL])
            seconds, samples = done[method][ckpt.SECONDS], done[method][ckpt.SAMPLES]
            results.append(
                report.evaluate(method, model.eval(), task, seconds=seconds, samples=samples)
            )
    finally:
        torch.set_num_threads(threads)
    print(report.table(results, task))
    print(report.notes(task))
    name = "lorenz.png" if options.csv is None else f"{options.csv.stem}.png"
    path = report.figure(results, task, options.out / name)
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
) -> dict[str, Any]:
    """Train `method` (from `resume` if given), saving checkpoints along the way; returns
    its entry of the checkpoint's `DONE`."""

    def save(state: dict[str, Any]) -> None:
        _save(options, config=_config(options, task), done=done, method=method, state=state)

    trained = train(
        method,
        loader,
        dim=len(task.features),
        steps=options.steps,
        seed=options.seed,
        lr=options.lr,
        device=device,
        resume=resume,
        save=save if options.checkpoint is not None else None,
        save_every=options.checkpoint_every,
        show=not options.quiet,
    )
    entry = {
        ckpt.MODEL: {name: value.cpu() for name, value in trained.model.state_dict().items()},
        ckpt.SECONDS: trained.seconds,
        ckpt.SAMPLES: trained.samples,
    }
    if options.checkpoint is not None:
        _save(options, _config(options, task), {**done, method: entry}, None, {})
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
                horizon=options.horizon or round(10 * LYAPUNOV_STEPS),
                seed=options.seed,
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
        )
    except (tasks.TaskError, tasks.series.SeriesError) as error:
        raise DemoError(str(error)) from None


def _config(options: Options, task: tasks.Task) -> dict[str, Any]:
    """The options a checkpoint must share with the run that resumes it."""
    return {
        **task.identity,
        "steps": options.steps,
        "batch_size": options.batch_size,
        "window": options.window,
        "lr": options.lr,
        "seed": options.seed,
        "workers": options.workers,
    }


def _resume_state(options: Options, config: dict[str, Any]) -> dict[str, Any] | None:
    if options.checkpoint is None:
        return None
    try:
        saved = ckpt.load(options.checkpoint)
        if saved is not None:
            ckpt.check_config(options.checkpoint, saved[ckpt.CONFIG], config)
    except ckpt.CheckpointError as error:
        raise DemoError(str(error)) from None
    return saved


def _check_out(out: Path) -> None:
    """Refuse an `--out` the figure could not be written to, before training starts."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise DemoError(f"--out {out} cannot hold the figure: {_reason(error)}") from None


@contextlib.contextmanager
def _checkpoint_lock(directory: Path | None) -> Iterator[None]:
    """Hold the checkpoint directory for this run, after checking it can be written."""
    with contextlib.ExitStack() as stack:
        if directory is not None:
            try:
                ckpt.check_directory(directory)
                stack.enter_context(hold(directory))
            except (ckpt.CheckpointError, Locked) as error:
                raise DemoError(str(error)) from None
            except OSError as error:
                why = _reason(error)
                raise DemoError(f"--checkpoint {directory} cannot be written: {why}") from None
        yield


def _reason(error: OSError) -> str:
    where = f" ({error.filename})" if error.filename else ""
    return f"{error.strerror or type(error).__name__}{where}"


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


def _describe(saved: dict[str, Any]) -> str:
    finished = ", ".join(saved[ckpt.DONE]) or "none"
    current = saved[ckpt.METHOD]
    at = f"; {current} at step {saved[ckpt.STEP]}" if current is not None else ""
    return f"finished: {finished}{at}"
