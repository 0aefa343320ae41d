import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loopline


def epoch_order(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def test_order_is_a_pure_function_of_seed_and_epoch():
    a, b = loopline.EpochSampler(50, seed=4), loopline.EpochSampler(range(50), seed=4)
    assert epoch_order(a, 2) == epoch_order(b, 2)
    assert epoch_order(a, 2) == epoch_order(a, 2)


def test_each_epoch_gets_a_fresh_order():
    sampler = loopline.EpochSampler(50, seed=4)
    orders = [epoch_order(sampler, epoch) for epoch in range(3)]
    assert all(sorted(order) == list(range(50)) for order in orders)
    assert orders[0] != orders[1] != orders[2]
    assert epoch_order(loopline.EpochSampler(50, seed=5), 0) != orders[0]


def test_without_shuffle_the_order_is_sequential():
    assert list(loopline.EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


@settings(max_examples=80, deadline=None)
@given(size=st.integers(0, 40), world_size=st.integers(1, 4), epoch=st.integers(0, 5))
def test_ranks_get_disjoint_parts_whose_union_is_everything(size, world_size, epoch):
    parts = [
        epoch_order(loopline.EpochSampler(size, seed=1, rank=rank, world_size=world_size), epoch)
        for rank in range(world_size)
    ]
    assert sorted(i for part in parts for i in part) == list(range(size))
    lengths = [
        len(loopline.EpochSampler(size, rank=r, world_size=world_size)) for r in range(world_size)
    ]
    assert lengths == [len(part) for part in parts]
    assert max(lengths) - min(lengths) <= 1


def test_rank_without_world_size_is_an_error():
    with pytest.raises(ValueError, match="give both rank and world_size"):
        loopline.EpochSampler(5, rank=0)


def test_rank_outside_world_is_an_error():
    with pytest.raises(ValueError, match=r"rank must be an int in \[0, 2\), got 2"):
        loopline.EpochSampler(5, rank=2, world_size=2)
