"""One run per checkpoint directory: an advisory lock on `DIR/.lock`, held while it runs.

The lock is a POSIX record lock (`fcntl.lockf`) on an open file, so the operating system
drops it when the process ends in any way, a kill included: no stale lock to clear by
hand. Unlike `flock`, a record lock belongs to the process alone: forked DataLoader
workers, which outlive a killed parent by seconds, do not inherit it. The file holds the
owner's pid, for the message a second run gets. Where `fcntl` does not exist (Windows)
runs are not locked.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCKNAME = ".lock"


class Locked(RuntimeError):
    """Another run holds the checkpoint directory."""


@contextlib.contextmanager
def hold(directory: Path) -> Iterator[None]:
    """Hold `directory`'s lock for the `with` block; raises `Locked` if another run has it.

    Example:
        >>> import pathlib, tempfile
        >>> directory = pathlib.Path(tempfile.mkdtemp())
        >>> with hold(directory):
        ...     (directory / ".lock").exists()
        True
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCKNAME
    with path.open("a+") as file:
        if fcntl is not None:
            try:
                fcntl.lockf(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                file.seek(0)
                owner = file.read().strip() or "unknown"
                raise Locked(
                    f"--checkpoint {directory} is in use by another run (pid {owner}); wait "
                    "for it to finish, or use another --checkpoint directory"
                ) from None
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
        yield
