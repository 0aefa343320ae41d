"""The public face: what `loopline.__all__` promises, each name documented by example."""

from __future__ import annotations

import inspect

import pytest

import loopline


def test_all_names_exist_once():
    assert len(set(loopline.__all__)) == len(loopline.__all__)
    missing = [name for name in loopline.__all__ if not hasattr(loopline, name)]
    assert missing == []


@pytest.mark.parametrize("name", loopline.__all__)
def test_every_public_name_has_a_runnable_example(name):
    # The examples themselves run as doctests (pytest --doctest-modules over src/loopline).
    doc = inspect.getdoc(getattr(loopline, name)) or ""
    assert ">>>" in doc, f"loopline.{name} has no >>> example in its docstring"
