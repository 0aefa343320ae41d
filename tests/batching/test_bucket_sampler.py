import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

import loopline
from loopline.batching.bucket_sampler import BucketSampler
from utils import assert_resumes_exactly, epoch_batches, flat, padding_efficiency, uniform_lengths

# ----------------------------------------------------------------- BucketSampler


@settings(max_examples=120, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 40), max_size=70),
    batch_size=st.one_of(st.none(), st.integers(1, 9)),
    max_tokens=st.one_of(st.none(), st.integers(40, 120)),
    buckets_of=st.integers(1, 5),
    epoch=st.integers(0, 3),
)
def test_every_index_appears_exactly_once_per_epoch(
    lengths, batch_size, max_tokens, buckets_of, epoch
):
    if batch_size is None and max_tokens is None:
        max_tokens = 60
    bucket_size = buckets_of * (batch_size or 3)
    sampler = BucketSampler(
        lengths, batch_size, seed=7, max_tokens=max_tokens, bucket_size=bucket_size
    )
    batches = epoch_batches(sampler, epoch)
    assert sorted(flat(batches)) == list(range(len(lengths)))
    assert len(sampler) == len(batches)
    assert all(batches)
    if batch_size is not None:
        assert all(len(batch) <= batch_size for batch in batches)
    if max_tokens is not None:
        assert all(len(b) * max(lengths[i] for i in b) <= max_tokens for b in batches)


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("max_tokens", [None, 50])
def test_with_drop_last_ranks_get_disjoint_batches_of_equal_count(world_size, max_tokens):
    lengths = (np.arange(53) * 7) % 11
    options = dict(drop_last=True, max_tokens=max_tokens, world_size=world_size)
    samplers = [BucketSampler(lengths, 4, rank=r, **options) for r in range(world_size)]
    parts = [epoch_batches(sampler, 2) for sampler in samplers]
    counts = [len(part) for part in parts]
    assert len(set(counts)) == 1
    indices = flat(flat(parts))
    assert len(indices) == len(set(indices))
    assert [len(sampler) for sampler in samplers] == counts
    if max_tokens is None:  # full batches only, and fewer than one batch dropped
        assert all(len(batch) == 4 for part in parts for batch in part)
        assert len(indices) == 52 - 52 // 4 % world_size * 4


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("max_tokens", [None, 50])
def test_without_drop_last_ranks_get_equal_counts_by_repeating_the_first_batches(
    world_size, max_tokens
):
    lengths = (np.arange(53) * 7) % 11

    def make(rank):
        return BucketSampler(lengths, 4, max_tokens=max_tokens, rank=rank, world_size=world_size)

    parts = [epoch_batches(make(r), 2) for r in range(world_size)]
    assert len({len(part) for part in parts}) == 1
    assert [len(make(r)) for r in range(world_size)] == [len(part) for part in parts]
    order = make(0).batches(2)
    missing = -len(order) % world_size
    dealt = [batch for step in zip(*parts, strict=True) for batch in step]
    assert dealt == order + order[:missing]
    assert sorted(set(flat(dealt))) == list(range(53))


@settings(max_examples=80, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 40), max_size=60),
    batch_size=st.integers(1, 6),
    max_tokens=st.one_of(st.none(), st.integers(40, 100)),
    world_size=st.integers(1, 3),
    drop_last=st.booleans(),
)
def test_ranks_get_equal_counts_disjoint_with_drop_last_and_covering_all_without(
    lengths, batch_size, max_tokens, world_size, drop_last
):
    options = dict(max_tokens=max_tokens, drop_last=drop_last, world_size=world_size, seed=3)
    samplers = [BucketSampler(lengths, batch_size, rank=r, **options) for r in range(world_size)]
    parts = [epoch_batches(sampler, 1) for sampler in samplers]
    assert [len(sampler) for sampler in samplers] == [len(parts[0])] * world_size
    indices = flat(flat(parts))
    if drop_last:
        assert len(indices) == len(set(indices))
    else:
        assert sorted(set(indices)) == list(range(len(lengths)))


def test_an_epoch_with_fewer_batches_than_ranks_still_gives_every_rank_one():
    parts = [epoch_batches(BucketSampler([3, 1], 2, rank=r, world_size=3), 0) for r in range(3)]
    assert parts == [[[1, 0]]] * 3


def test_max_tokens_bounds_padded_size_and_batch_size_caps_the_count():
    lengths = uniform_lengths(3000, seed=1)
    capped = list(BucketSampler(lengths, 8, max_tokens=2048))
    assert all(len(b) * lengths[b].max() <= 2048 for b in capped)
    assert max(len(b) for b in capped) == 8
    assert sorted(flat(capped)) == list(range(3000))


def test_max_tokens_without_batch_size_puts_many_short_samples_together():
    lengths = [1] * 50 + [100] * 5
    batches = list(BucketSampler(lengths, None, max_tokens=200))
    assert sorted(len(batch) for batch in batches) == [1, 2, 2, 50]
    assert all(len(b) * max(lengths[i] for i in b) <= 200 for b in batches)


def test_batch_order_is_a_pure_function_of_seed_and_epoch_and_differs_between_epochs():
    lengths = uniform_lengths(500)
    first = [epoch_batches(BucketSampler(lengths, 8, seed=2), e) for e in range(3)]
    again = [epoch_batches(BucketSampler(lengths, 8, seed=2), e) for e in range(3)]
    assert first == again
    assert first[0] != first[1] != first[2]
    assert epoch_batches(BucketSampler(lengths, 8, seed=3), 0) != first[0]


def test_without_shuffle_buckets_are_consecutive_indices_sorted_by_length():
    sampler = BucketSampler([4, 3, 2, 1, 9, 8], 2, shuffle=False, bucket_size=4)
    assert list(sampler) == [[3, 2], [1, 0], [5, 4]]


def test_lengths_may_be_a_list_a_numpy_array_or_a_tensor():
    lengths = [5, 1, 4, 2, 8, 7, 3]
    expected = list(BucketSampler(lengths, 2, seed=1))
    assert list(BucketSampler(np.array(lengths, dtype=np.int32), 2, seed=1)) == expected
    assert list(BucketSampler(torch.tensor(lengths), 2, seed=1)) == expected
    assert list(BucketSampler([], 2)) == []


@pytest.mark.parametrize(
    ("lengths", "options", "message"),
    [
        ([3, -2, 4, -1], {}, r"lengths must be >= 0, got lengths\[1\] = -2 \(2 negative"),
        ([1.5, 2.0], {}, "lengths must be integers, got dtype float64"),
        ([[1, 2]], {}, r"lengths must be 1-D, got shape \(1, 2\)"),
        ([3, 9, 4], {"max_tokens": 8}, "sample 1 has length 9 > max_tokens=8"),
        ([3], {"batch_size": None}, "batch_size may be None only with max_tokens"),
        ([3], {"batch_size": 0}, "batch_size must be None or an int >= 1, got 0"),
        ([3], {"bucket_size": 10}, "bucket_size must be a multiple of batch_size.*=10.*=4"),
        ([3], {"seed": -1}, "seed must be an int >= 0, got -1"),
        ([3], {"rank": 0}, "give both rank and world_size"),
        ([3], {"rank": 2, "world_size": 2}, r"rank must be an int in \[0, 2\), got 2"),
    ],
)
def test_bad_arguments_are_errors_that_say_what_was_wrong(lengths, options, message):
    options = {"batch_size": 4, **options}
    with pytest.raises(ValueError, match=message):
        BucketSampler(lengths, **options)


def test_padding_efficiency_reaches_99_percent_with_a_shuffled_batch_order():
    lengths = uniform_lengths()
    sampler = BucketSampler(lengths, 32, seed=0)
    epochs = [epoch_batches(sampler, epoch) for epoch in range(2)]
    assert all(padding_efficiency(lengths, batches) >= 0.99 for batches in epochs)
    assert epochs[0] != epochs[1]
    # For scale: random batches waste about half; batch order must not follow length.
    shuffled = np.random.default_rng(0).permutation(len(lengths)).reshape(-1, 32)
    assert padding_efficiency(lengths, shuffled) < 0.55
    longest = [max(lengths[i] for i in batch) for batch in epochs[0]]
    assert longest != sorted(longest)


def dataset_loader(**options):
    lengths = (np.arange(37) * 5) % 13 + 1
    sampler = BucketSampler(lengths, 4, seed=5, bucket_size=8)
    return DataLoader(torch.arange(37), batch_sampler=sampler, **options)


@pytest.mark.parametrize("midpoint", [0, 3, 9, 10, 11, 23])
def test_forever_resumes_a_bucketed_dataloader_exactly(midpoint):
    # 10 batches per epoch.
    assert_resumes_exactly(lambda: loopline.forever(dataset_loader()), midpoint, 30)


def test_forever_resumes_a_bucketed_dataloader_with_workers_exactly():
    assert_resumes_exactly(lambda: loopline.forever(dataset_loader(num_workers=2)), 13, 25)


def test_forever_gives_each_index_once_per_epoch_through_a_dataloader():
    batches = [batch.tolist() for batch in loopline.forever(dataset_loader(), epochs=2)]
    assert sorted(flat(batches[:10])) == sorted(flat(batches[10:])) == list(range(37))
