"""Progress bars for the demo's phases: tqdm if installed, else rich, else none.

Neither is a dependency of loopline, so `progress` never fails for lack of them: it
returns a bar with the same three methods whichever is found, or one that does nothing.
Bars write to stderr, so the demo's table on stdout stays clean.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol


class Bar(Protocol):
    """What the demo needs of a progress bar."""

    def update(self, n: int) -> None: ...

    def note(self, text: str) -> None: ...

    def close(self) -> None: ...


class _Silent:
    def update(self, n: int) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class _Tqdm:
    def __init__(self, total: int, description: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=description, file=sys.stderr, leave=True)

    def update(self, n: int) -> None:
        self._bar.update(n)

    def note(self, text: str) -> None:
        self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        self._bar.close()


class _Rich:
    def __init__(self, total: int, description: str) -> None:
        from rich.console import Console
        from rich.progress import Progress

        self._progress: Any = Progress(console=Console(stderr=True))
        self._description = description
        self._task = self._progress.add_task(description, total=total)
        self._progress.start()

    def update(self, n: int) -> None:
        self._progress.update(self._task, advance=n)

    def note(self, text: str) -> None:
        self._progress.update(self._task, description=f"{self._description}  [{text}]")

    def close(self) -> None:
        self._progress.stop()


def progress(total: int, description: str, *, enabled: bool = True) -> Bar:
    """A bar counting to `total`; a silent one when disabled or nothing is installed.

    Example:
        >>> bar = progress(10, "training", enabled=False)
        >>> bar.update(5); bar.note("loss 0.1"); bar.close()
    """
    if not enabled:
        return _Silent()
    for kind in (_Tqdm, _Rich):
        try:
            return kind(total, description)
        except ImportError:
            continue
    return _Silent()
