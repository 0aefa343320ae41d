"""Rotated epochs under even() (issue 12, item 7): with a fixed-order generator of 101
items, batches of 10 and 2 ranks, even() left out item 100 in every epoch, so it was never
trained on. Each shard now moves a rotating part of its own sequence to its end."""

from __future__ import annotations

from collections import Counter
from itertools import islice
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import loopline
from _dist_ranks import Ranks
from loopline.streams._rotation import rotated
from utils import count_up


@given(length=st.integers(0, 30), rotation=st.integers(0, 40), start=st.integers(0, 35))
def test_seeking_and_replaying_give_the_same_rotated_sequence(length, rotation, start):
    own = list(range(length))

    def own_from(k):
        return iter(own[k:])

    moved = rotation % length if length else 0
    expected = (own[moved:] + own[:moved])[start:]
    assert list(rotated(own_from, rotation, start, seekable=False)) == expected
    assert list(rotated(own_from, rotation, start, seekable=True)) == expected


@given(
    size=st.integers(0, 60),
    shards=st.integers(1, 4),
    new_shards=st.integers(1, 4),
    own_rotation=st.integers(0, 9),
    data=st.data(),
)
def test_a_rotated_epoch_resized_still_delivers_each_item_once(
    size, shards, new_shards, own_rotation, data
):
    # Shards rotate their own sequences; a resized job deals the full sequence in the order
    # those shards dealt it, so the saved counts mean the same items.
    dataset = loopline.from_generator(count_up, size)
    seen, counts = [], []
    for index in range(shards):
        shard = loopline.Shard(index=index, count=shards, worker=index, num_workers=shards)
        items = list(dataset.iter_epoch(3, shard, rotation=own_rotation))
        taken = data.draw(st.integers(0, len(items)), label="taken")
        seen += items[:taken]
        counts.append(taken)
    for index in range(new_shards):
        shard = loopline.Shard(index=index, count=new_shards, worker=index, num_workers=new_shards)
        layered = dataset.iter_epoch(3, shard, layers=[counts], rotation=own_rotation)
        seen += list(layered)
    assert Counter(seen) == Counter(range(size))


def test_every_item_is_trained_on_in_nine_of_ten_epochs(ranks: Ranks, tmp_path: Path):
    results = ranks.run("rotation", tmp_path, n=101, batch_size=10, epochs=10, num_workers=0)
    epochs_trained = Counter()
    for epoch in range(10):
        trained = set(results[0][epoch]) | set(results[1][epoch])
        assert len(trained) == 100  # even() leaves one item out, as before
        epochs_trained.update(trained)
    assert min(epochs_trained[item] for item in range(101)) >= 9


def test_a_single_rank_is_not_rotated():
    # Nothing is left out on one rank, so the order stays the plain DataLoader's.
    from torch.utils.data import DataLoader

    loader = DataLoader(loopline.from_generator(count_up, 7), batch_size=3)
    stream = loopline.forever(loopline.even(loader))
    assert [b.tolist() for b in islice(stream, 6)] == [[0, 1, 2], [3, 4, 5], [6]] * 2
