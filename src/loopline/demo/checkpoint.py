"""The demo's checkpoint: one file, replaced atomically, from which a run resumes exactly.

A checkpoint is a plain dict (keys below). It holds the options that decide the result
(`CONFIG`), the methods already trained (`DONE`: each one's final weights and training
time) and, for the method in progress (`METHOD`), everything its next step depends on:
the model, the optimizer, the learning-rate schedule, the `forever` stream's position,
the pushforward draws' generator, and the step. `save` writes a temporary file and then
renames it over the old one, so a kill at any moment leaves the last complete
checkpoint in place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

FILENAME = "checkpoint.pt"
FORMAT_VERSION = 1

# Keys of the checkpoint dict.
FORMAT = "format"
CONFIG = "config"
DONE = "done"
METHOD = "method"
STEP = "step"
MODEL = "model"
OPTIMIZER = "optimizer"
SCHEDULE = "schedule"
STREAM = "stream"
GENERATOR = "generator"
SECONDS = "seconds"
SAMPLES = "samples"


class CheckpointMismatch(ValueError):
    """The checkpoint was made by a run with other options; resuming would not be exact."""


def save(directory: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to `directory/checkpoint.pt` atomically; returns the file's path.

    Example:
        >>> import tempfile
        >>> directory = tempfile.mkdtemp()
        >>> path = save(directory, {STEP: 3})
        >>> load(directory)[STEP], path.name
        (3, 'checkpoint.pt')
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILENAME
    partial = directory / f".{FILENAME}.{os.getpid()}.tmp"
    try:
        with partial.open("wb") as file:
            torch.save({FORMAT: FORMAT_VERSION, **state}, file)
            file.flush()
            # On disk before the rename: a crash must not leave a renamed empty file.
            os.fsync(file.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def load(directory: str | Path) -> dict[str, Any] | None:
    """The checkpoint in `directory`, or None if there is none yet."""
    path = Path(directory) / FILENAME
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get(FORMAT) != FORMAT_VERSION:
        raise CheckpointMismatch(
            f"{path} has format {state.get(FORMAT)!r}, this loopline writes {FORMAT_VERSION}; "
            "use another --checkpoint directory"
        )
    return state


def check_config(directory: str | Path, saved: dict[str, Any], config: dict[str, Any]) -> None:
    """Raise `CheckpointMismatch` naming every option that differs from the saved run's."""
    differ = [
        f"{key} {saved.get(key)!r} there, {config.get(key)!r} now"
        for key in sorted(set(saved) | set(config))
        if saved.get(key) != config.get(key)
    ]
    if differ:
        raise CheckpointMismatch(
            f"the checkpoint in {directory} was made with other options ({'; '.join(differ)}); "
            "rerun with the same options to resume, or use another --checkpoint directory"
        )
