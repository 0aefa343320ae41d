"""Progress bars of the demo: tqdm when installed, never a failure when it is not."""

from __future__ import annotations

import sys

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
