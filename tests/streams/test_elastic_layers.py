"""The arithmetic of resized epochs (streams/_elastic.py): what layers of per-shard counts
leave of an epoch, computed three ways that must agree."""

from __future__ import annotations

from itertools import islice

from hypothesis import given
from hypothesis import strategies as st

from loopline.streams._elastic import (
    first_unconsumed,
    keeper,
    remaining_positions,
    undelivered,
)

layer = st.lists(st.integers(0, 12), min_size=1, max_size=4)


@given(length=st.integers(0, 50), layers=st.lists(layer, max_size=3))
def test_the_array_and_the_stream_leave_the_same_positions(length, layers):
    assert (
        list(undelivered(iter(range(length)), layers))
        == remaining_positions(length, layers).tolist()
    )


@given(length=st.integers(0, 50), layers=st.lists(layer, min_size=1, max_size=3))
def test_a_seekable_start_skips_only_delivered_positions(length, layers):
    begin = min(first_unconsumed(layers), length)
    assert set(range(begin)).isdisjoint(remaining_positions(length, layers).tolist())
    resumed = list(undelivered(iter(range(begin, length)), layers, begin))
    assert resumed == remaining_positions(length, layers).tolist()


@given(
    length=st.integers(0, 50),
    layers=st.lists(layer, min_size=1, max_size=3),
    count=st.integers(1, 4),
    data=st.data(),
)
def test_the_keeper_picks_what_a_stride_of_the_rest_picks(length, layers, count, data):
    index = data.draw(st.integers(0, count - 1))
    begin = min(first_unconsumed(layers), length)
    wanted = keeper(layers, begin, index, count)
    picked = [p for p in range(begin, length) if wanted(p)]
    rest = remaining_positions(length, layers).tolist()
    assert picked == list(islice(rest, index, None, count))
