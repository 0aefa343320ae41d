"""The demo's checkpoint: one file, replaced atomically, from which a run resumes exactly.

A checkpoint is a plain dict (keys below). It holds the options that decide the result
(`CONFIG`), the methods already trained (`DONE`: each one's final weights and training
time) and, for the method in progress (`METHOD`), everything its next step depends on:
the model, the optimizer, the learning-rate schedule, the `forever` stream's position,
the pushforward draws' generator, and the step. `save` writes a temporary file and then
renames it over the old one, so a kill at any moment leaves the last complete
checkpoint in place. The file holds a digest of its contents: a truncated, corrupted or
foreign file is refused by `load` with one line naming it, and is never written over.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

FILENAME = "checkpoint.pt"
FORMAT_VERSION = 2  # 2: with a digest

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
DIGEST = "digest"  # sha256 of everything else in the file, as `_digest` walks it


class CheckpointError(ValueError):
    """The checkpoint cannot be used; the message names the file and says why."""


class CheckpointMismatch(CheckpointError):
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
    state = {FORMAT: FORMAT_VERSION, **state}
    try:
        with partial.open("wb") as file:
            torch.save({**state, DIGEST: _digest(state)}, file)
            file.flush()
            # On disk before the rename: a crash must not leave a renamed empty file.
            os.fsync(file.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def load(directory: str | Path) -> dict[str, Any] | None:
    """The checkpoint in `directory`, or None if there is none yet.

    Raises:
        CheckpointError: `directory` is not a directory, or its `checkpoint.pt` is not a
            file, cannot be read, is not a demo checkpoint, or fails its digest.
    """
    directory = Path(directory)
    path = directory / FILENAME
    check_directory(directory)
    if not path.exists():
        return None
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file; remove it or use another --checkpoint")
    state = _read(path)
    if state.get(FORMAT) != FORMAT_VERSION:
        raise CheckpointMismatch(
            f"{path} has format {state.get(FORMAT)!r}, this loopline writes {FORMAT_VERSION}; "
            "use another --checkpoint directory"
        )
    if DIGEST not in state:
        raise CheckpointError(_refusal(path, f"it has no {DIGEST!r} of its contents"))
    if state.pop(DIGEST) != _digest(state):
        raise CheckpointError(_refusal(path, "its contents do not match their digest (corrupted)"))
    return state


def describe(state: dict[str, Any]) -> str:
    """What a loaded checkpoint holds, in one line: the methods trained and the step of
    the one in progress.

    Example:
        >>> describe({DONE: {"teacher forcing": {}}, METHOD: "unroll", STEP: 400})
        'finished: teacher forcing; unroll at step 400'
    """
    finished = ", ".join(state[DONE]) or "none"
    current = state[METHOD]
    at = f"; {current} at step {state[STEP]}" if current is not None else ""
    return f"finished: {finished}{at}"


def check_directory(directory: Path) -> None:
    """Refuse a `--checkpoint` that exists and is not a directory (or sits under a file)."""
    for place in (directory, *directory.parents):
        if place.exists():
            if not place.is_dir():
                what = "a file" if place.is_file() else "not a directory"
                inside = "" if place == directory else f" (it is inside {place})"
                raise CheckpointError(
                    f"--checkpoint {directory} cannot be a directory: {place} is {what}{inside}"
                )
            return


def _read(path: Path) -> dict[str, Any]:
    """The dict in the file, or a CheckpointError saying why there is none."""
    if path.stat().st_size == 0:
        raise CheckpointError(_refusal(path, "it is empty"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises all sorts: EOFError, RuntimeError, ...
        why = str(error).strip().splitlines()[0][:80] if str(error).strip() else ""
        raise CheckpointError(
            _refusal(path, f"it cannot be read ({type(error).__name__}{': ' if why else ''}{why})")
        ) from None
    if not isinstance(state, dict) or FORMAT not in state:
        keys = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(_refusal(path, f"it holds {keys}, not a demo checkpoint's keys"))
    return state


def _refusal(path: Path, why: str) -> str:
    return (
        f"{path} is not a usable loopline demo checkpoint: {why}; it was left as it is: "
        "delete it to start afresh, or use another --checkpoint directory"
    )


def _digest(value: Any) -> str:
    """sha256 of a checkpoint's contents: tensors by dtype, shape and bytes, the rest by
    repr (exact for ints, floats and strings), dicts in their order."""
    hasher = hashlib.sha256()

    def walk(item: Any) -> None:
        if isinstance(item, torch.Tensor):
            data = item.detach().cpu().contiguous().reshape(-1)
            hasher.update(f"T{item.dtype}{tuple(item.shape)}".encode())
            hasher.update(data.view(torch.uint8).numpy().tobytes())
        elif isinstance(item, dict):
            hasher.update(f"D{len(item)}".encode())
            for key, inner in item.items():
                hasher.update(repr(key).encode())
                walk(inner)
        elif isinstance(item, (list, tuple)):
            hasher.update(f"{type(item).__name__}{len(item)}".encode())
            for inner in item:
                walk(inner)
        else:
            hasher.update(f"{type(item).__name__}:{item!r}".encode())

    walk(value)
    return hasher.hexdigest()


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
