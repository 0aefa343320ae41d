"""Checks the demo makes before it trains: the paths it will write, and the lock.

`check_paths` refuses an `--out` the figure could not be written to and a `--checkpoint`
that cannot be a directory or holds an unreadable file, before the data is even made;
`checkpoint_lock` refuses one that cannot be written or that another run holds, and
`resume_state` one made with other options. Each is one line (`DemoError`) before the
first step, not a traceback at the first save or at the end.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loopline.demo import checkpoint as ckpt
from loopline.demo._lock import Locked, hold


class DemoError(ValueError):
    """A problem with the demo's options or inputs, reported as one line."""


def check_paths(out: Path, checkpoint: Path | None) -> None:
    """Refuse an `--out` the figure could not be written to, and a `--checkpoint` that
    cannot be a directory or holds an unreadable checkpoint (read again, under the
    lock, by `resume_state`)."""
    check_out(out)
    if checkpoint is not None:
        try:
            ckpt.load(checkpoint)
        except ckpt.CheckpointError as error:
            raise DemoError(str(error)) from None


def check_out(out: Path) -> None:
    """Refuse an `--out` the figure could not be written to, before training starts."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise DemoError(f"--out {out} cannot hold the figure: {reason(error)}") from None


@contextlib.contextmanager
def checkpoint_lock(directory: Path | None) -> Iterator[None]:
    """Hold the checkpoint directory for this run, after checking it can be written."""
    with contextlib.ExitStack() as stack:
        if directory is not None:
            try:
                ckpt.check_directory(directory)
                stack.enter_context(hold(directory))
            except (ckpt.CheckpointError, Locked) as error:
                raise DemoError(str(error)) from None
            except OSError as error:
                why = reason(error)
                raise DemoError(f"--checkpoint {directory} cannot be written: {why}") from None
        yield


def resume_state(directory: Path | None, config: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint to resume from (None without one), made with the options `config`."""
    if directory is None:
        return None
    try:
        saved = ckpt.load(directory)
        if saved is not None:
            ckpt.check_config(directory, saved[ckpt.CONFIG], config)
    except ckpt.CheckpointError as error:
        raise DemoError(str(error)) from None
    return saved


def reason(error: OSError) -> str:
    where = f" ({error.filename})" if error.filename else ""
    return f"{error.strerror or type(error).__name__}{where}"
