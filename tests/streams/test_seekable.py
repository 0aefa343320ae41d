"""`from_generator(..., seekable=True)`: a generator told where to begin, so that a resumed
stream starts at once instead of replaying everything before its position (issue 12)."""

from __future__ import annotations

import pytest
from torch.utils.data import DataLoader

import loopline
from utils import assert_resumes_exactly

STARTS: list[int] = []  # the starts a generator was told, in this process


def from_start(n: int):
    """0, 1, ..., n-1, beginning at current_shard().start (the full sequence)."""
    start = loopline.current_shard().start
    STARTS.append(start)
    yield from range(start, n)


def own_from_start(n: int):
    """This shard's items i % count == index, beginning after its first `start` ones."""
    shard = loopline.current_shard()
    STARTS.append(shard.start)
    yield from range(shard.index + shard.start * shard.count, n, shard.count)


def loader(fn, n=23, batch_size=3, workers=0, sharded=False):
    dataset = loopline.from_generator(fn, n, sharded=sharded, seekable=True)
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize(("fn", "sharded"), [(from_start, False), (own_from_start, True)])
@pytest.mark.parametrize("midpoint", [0, 1, 4, 7, 9, 12])
def test_a_seekable_stream_resumes_exactly(fn, sharded, workers, midpoint):
    def stream():
        return loopline.forever(loader(fn, workers=workers, sharded=sharded))

    assert_resumes_exactly(stream, midpoint, total=20)  # 8 or 9 batches an epoch


def test_the_generator_is_told_where_to_begin_and_makes_nothing_before():
    STARTS.clear()
    stream = loopline.forever(loader(from_start))
    for _ in range(5):  # 15 items into the epoch of 23
        next(stream)
    state = stream.state_dict()
    resumed = loopline.forever(loader(from_start))
    resumed.load_state_dict(state)
    assert next(resumed).tolist() == [15, 16, 17]
    assert STARTS == [0, 15]  # the resumed generator began at item 15 itself


def test_a_resume_a_million_batches_in_starts_there_at_once():
    STARTS.clear()
    state = loopline.forever(loader(from_start, n=10**9)).state_dict()
    # A million batches of 3 into the epoch.
    state["ranks"][0].update(position=[1_000_000], consumed=[3_000_000])
    resumed = loopline.forever(loader(from_start, n=10**9))
    resumed.load_state_dict(state)
    assert next(resumed).tolist() == [3_000_000, 3_000_001, 3_000_002]
    assert STARTS == [3_000_000]


def test_without_seekable_the_generator_is_replayed_as_before():
    def counted(n):
        STARTS.append(loopline.current_shard().start)
        yield from range(n)

    STARTS.clear()
    dataset = loopline.from_generator(counted, 10)
    assert list(dataset.iter_epoch(0, start=4)) == [4, 5, 6, 7, 8, 9]
    assert STARTS == [0]  # told nothing: it made items 0-3, and they were dropped


def test_seekable_must_be_a_bool():
    with pytest.raises(TypeError, match="from_generator: seekable must be True or False, got 1"):
        loopline.from_generator(from_start, 3, seekable=1)
