"""Fixtures of the streams tests: the rank processes of the distributed tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from _dist_ranks import Ranks


@pytest.fixture(scope="module")
def ranks() -> Iterator[Ranks]:
    group = Ranks()
    try:
        yield group
    finally:
        group.stop()
