"""`in_order=False`: batches come as workers finish them, yet every epoch holds exactly its
own samples, `.epoch` labels each batch right, and `state_dict()` refuses (issue 12,
item 5: a slow sample of epoch 0 used to be delivered as part of epoch 1)."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from torch.utils.data import DataLoader, Dataset

import loopline

SIZE, BATCH = 8, 2


class SlowFirst(Dataset):
    """Sample 0 takes long, so its batch arrives after batches drawn later."""

    def __len__(self) -> int:
        return SIZE

    def __getitem__(self, index: int) -> int:
        if index == 0:
            time.sleep(0.3)
        return index


def slow_first(n: int):
    """A generator whose item 0 takes long (each worker keeps every other item)."""
    for i in range(n):
        if i == 0:
            time.sleep(0.3)
        yield i


def slow_shard_zero(n: int):
    """Each shard's own items; shard 0's first one takes long."""
    shard = loopline.current_shard()
    for i in range(shard.index, n, shard.count):
        if i == 0:
            time.sleep(0.3)
        yield i


def epochs_seen(stream) -> dict[int, Counter]:
    seen: dict[int, Counter] = {}
    for batch in stream:
        seen.setdefault(stream.epoch, Counter()).update(batch.tolist())
    return seen


def test_map_style_out_of_order_keeps_each_epoch_to_its_own_samples():
    sampler = loopline.EpochSampler(SIZE, seed=1)
    loader = DataLoader(
        SlowFirst(), batch_size=BATCH, sampler=sampler, num_workers=2, in_order=False
    )
    with loopline.forever(loader, epochs=3) as stream:
        seen = epochs_seen(stream)
    assert seen == {epoch: Counter(range(SIZE)) for epoch in range(3)}


def test_map_style_out_of_order_really_reorders_within_an_epoch():
    loader = DataLoader(SlowFirst(), batch_size=BATCH, num_workers=2, in_order=False)
    with loopline.forever(loader, epochs=1) as stream:
        first = [batch.tolist() for batch in stream]
    assert sorted(first) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert first[0] != [0, 1]  # the slow batch did not hold the others up


def test_generator_out_of_order_keeps_each_epoch_to_its_own_items():
    dataset = loopline.from_generator(slow_first, SIZE)
    loader = DataLoader(dataset, batch_size=BATCH, num_workers=2, in_order=False)
    with loopline.forever(loader, epochs=3) as stream:
        seen = epochs_seen(stream)
    assert seen == {epoch: Counter(range(SIZE)) for epoch in range(3)}


def test_generator_out_of_order_passes_batches_on_as_they_come():
    dataset = loopline.from_generator(slow_shard_zero, SIZE, sharded=True)
    loader = DataLoader(dataset, batch_size=BATCH, num_workers=2, in_order=False)
    with loopline.forever(loader, epochs=2) as stream:
        seen = [(stream.epoch, batch.tolist()) for batch in stream]
    assert seen[0] == (0, [1, 3])  # shard 1's batch first: shard 0 is still sleeping
    for epoch in (0, 1):
        assert sorted(b for e, b in seen if e == epoch) == [[0, 2], [1, 3], [4, 6], [5, 7]]


@pytest.mark.parametrize("kind", ["map", "generator"])
def test_out_of_order_streams_refuse_to_save_a_position(kind):
    dataset = SlowFirst() if kind == "map" else loopline.from_generator(slow_first, SIZE)
    loader = DataLoader(dataset, batch_size=BATCH, num_workers=2, in_order=False)
    with (
        loopline.forever(loader) as stream,
        pytest.raises(loopline.NotResumable, match="in_order=False"),
    ):
        stream.state_dict()
