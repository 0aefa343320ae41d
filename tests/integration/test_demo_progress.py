"""Progress bars of the demo: tqdm when installed, else rich, never a failure for neither.

rich is not a test dependency, so its branch runs against small fakes of the three
modules it imports, which record what the demo's bar does to them.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from loopline.demo import _progress
from loopline.demo._progress import progress


def test_without_tqdm_or_rich_the_bar_does_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("tqdm", "rich", "rich.console", "rich.progress"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: ImportError
    bar = progress(10, "training")
    bar.update(10)
    bar.note("loss 1")
    bar.close()
    assert isinstance(bar, _progress._Silent)
    assert capsys.readouterr() == ("", "")


def test_tqdm_draws_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    bar = progress(4, "training")
    bar.update(4)
    bar.note("loss 0.5")
    bar.close()
    out, err = capsys.readouterr()
    assert out == ""
    assert "training" in err and "4/4" in err


def test_a_disabled_bar_draws_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    bar = progress(4, "training", enabled=False)
    bar.update(4)
    bar.close()
    assert capsys.readouterr() == ("", "")


@dataclass
class FakeConsole:
    stderr: bool = False


@dataclass
class FakeProgress:
    """What `rich.progress.Progress` was asked to do, as calls in order."""

    console: Any = None
    calls: list[tuple[str, Any]] = field(default_factory=list)
    descriptions: dict[int, str] = field(default_factory=dict)
    totals: dict[int, int] = field(default_factory=dict)
    completed: dict[int, int] = field(default_factory=dict)

    def add_task(self, description: str, total: int) -> int:
        task = len(self.descriptions)
        self.descriptions[task], self.totals[task], self.completed[task] = description, total, 0
        self.calls.append(("add_task", task))
        return task

    def start(self) -> None:
        self.calls.append(("start", None))

    def update(self, task: int, *, advance: int = 0, description: str | None = None) -> None:
        self.completed[task] += advance
        if description is not None:
            self.descriptions[task] = description
        self.calls.append(("update", task))

    def stop(self) -> None:
        self.calls.append(("stop", None))


@pytest.fixture
def fake_rich(monkeypatch: pytest.MonkeyPatch) -> list[FakeProgress]:
    """Installs fake `rich`, `rich.console` and `rich.progress`; returns the Progresses made."""
    made: list[FakeProgress] = []

    def make_progress(*, console: Any = None) -> FakeProgress:
        made.append(FakeProgress(console))
        return made[-1]

    console, progress_module = types.ModuleType("rich.console"), types.ModuleType("rich.progress")
    console.Console = FakeConsole  # type: ignore[attr-defined]
    progress_module.Progress = make_progress  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rich", types.ModuleType("rich"))
    monkeypatch.setitem(sys.modules, "rich.console", console)
    monkeypatch.setitem(sys.modules, "rich.progress", progress_module)
    return made


def test_without_tqdm_rich_counts_on_a_stderr_console(
    fake_rich: list[FakeProgress], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    bar = progress(10, "training")
    bar.update(3)
    bar.update(4)
    bar.note("loss 0.5")
    bar.close()
    [made] = fake_rich
    assert made.console == FakeConsole(stderr=True)
    assert made.totals == {0: 10}
    assert made.completed == {0: 7}
    assert made.descriptions == {0: "training  [loss 0.5]"}
    # Started once the task is there, before any update; stopped last.
    assert made.calls[:2] == [("add_task", 0), ("start", None)]
    assert made.calls[2:] == [("update", 0)] * 3 + [("stop", None)]


def test_tqdm_is_preferred_when_rich_is_importable_too(
    fake_rich: list[FakeProgress], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[dict[str, Any]] = []

    class FakeTqdm:
        def __init__(self, **options: Any) -> None:
            made.append({**options, "n": 0, "closed": False})

        def update(self, n: int) -> None:
            made[-1]["n"] += n

        def set_postfix_str(self, text: str, refresh: bool = True) -> None:
            made[-1]["postfix"] = text

        def close(self) -> None:
            made[-1]["closed"] = True

    tqdm = types.ModuleType("tqdm")
    tqdm.tqdm = FakeTqdm  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm", tqdm)
    bar = progress(4, "training")
    bar.update(4)
    bar.note("loss 0.5")
    bar.close()
    assert fake_rich == []
    assert made == [
        {
            "total": 4,
            "desc": "training",
            "file": sys.stderr,
            "leave": True,
            "n": 4,
            "postfix": "loss 0.5",
            "closed": True,
        }
    ]
