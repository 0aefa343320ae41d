import io
from itertools import islice

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

import loopline
from loopline.bucket import Bucketer, BucketSampler, bucket
from utils import assert_resumes_exactly, to_plain


def ragged(n):
    """n tensors filled with their position, of lengths 1..9 that change with the epoch."""
    epoch = loopline.current_shard().epoch
    for i in range(n):
        yield torch.full((1 + (i * 7 + epoch * 3) % 9,), i)


def flat(batches):
    return [i for batch in batches for i in batch]


def epoch_batches(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def padding_efficiency(lengths, batches):
    """Real elements over padded elements: sum(lengths) / sum(len(batch) * longest)."""
    real = sum(lengths[i] for batch in batches for i in batch)
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    return real / padded


def uniform_lengths(count=20_000, seed=0):
    return np.random.default_rng(seed).integers(1, 513, count)


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
        ([3], {"batch_size": 0}, "batch_size must be an int >= 1, got 0"),
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


# ----------------------------------------------------------------- bucket (streams)


@settings(max_examples=80, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 30), max_size=60),
    batch_size=st.integers(1, 6),
    buffer_batches=st.integers(1, 4),
    drop_last=st.booleans(),
    epoch=st.integers(0, 2),
)
def test_stream_yields_every_item_exactly_once_per_epoch(
    lengths, batch_size, buffer_batches, drop_last, epoch
):
    items = list(enumerate(lengths))
    stage = bucket(
        items,
        length=lambda item: item[1],
        batch_size=batch_size,
        buffer_size=batch_size * buffer_batches,
        drop_last=drop_last,
    )
    stage.set_epoch(epoch)
    batches = list(stage)
    got = sorted(flat(batches))
    if drop_last:
        kept = len(items) - len(items) % batch_size
        assert got == sorted(items[:kept])  # the latest arrivals go, whatever their length
        assert all(len(batch) == batch_size for batch in batches)
    else:
        assert got == items
    # Within a buffer, each batch is a run of the buffer sorted by length.
    buffer = batch_size * buffer_batches
    for start in range(0, len(batches), buffer_batches):
        window = batches[start : start + buffer_batches]
        # A batch of equal lengths goes before one that starts with that length.
        runs = sorted(window, key=lambda batch: (batch[0][1], batch[-1][1]))
        assert [item[1] for item in flat(runs)] == sorted(item[1] for item in flat(window))
        assert len(flat(window)) <= buffer


def test_stream_padding_efficiency_reaches_99_percent_with_128_batches_of_buffer():
    lengths = uniform_lengths()
    stage = bucket(
        list(enumerate(lengths.tolist())),
        length=lambda item: item[1],
        batch_size=32,
        buffer_size=128 * 32,
    )
    epochs = []
    for epoch in range(2):
        stage.set_epoch(epoch)
        epochs.append([[index for index, _ in batch] for batch in stage])
    assert all(padding_efficiency(lengths, batches) >= 0.99 for batches in epochs)
    assert epochs[0] != epochs[1]
    longest = [max(lengths[i] for i in batch) for batch in epochs[0][:128]]
    assert longest != sorted(longest)


def test_stream_order_is_reproducible_and_reaches_the_source_epoch():
    source = loopline.from_generator(ragged, 20)
    stage = bucket(source, length=len, batch_size=3, buffer_size=9, seed=4)
    runs = []
    for epoch in (0, 1, 0):
        stage.set_epoch(epoch)
        runs.append(to_plain(list(stage)))
    assert source.epoch == 0
    assert runs[0] == runs[2] != runs[1]
    # Epoch 1 has other lengths: the epoch reached the generator.
    assert [len(x) for x in flat(runs[0])] != [len(x) for x in flat(runs[1])]


def test_stream_state_survives_torch_save_and_resumes_inside_a_buffer():
    def make():
        return bucket(loopline.from_generator(ragged, 23), length=len, batch_size=2, buffer_size=6)

    reference = to_plain(list(make()))
    stage = make()
    batches = iter(stage)
    head = to_plain(list(islice(batches, 4)))
    buffer = io.BytesIO()
    torch.save(stage.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert (state["consumed"], state["buffers"], len(state["pending"])) == (12, 2, 2)
    restored = make()
    restored.load_state_dict(state)
    assert to_plain(restored.state_dict()) == to_plain(state)  # as loaded, until next iter()
    assert head + to_plain(list(restored)) == reference
    assert to_plain(list(restored)) == reference  # the next iter() starts afresh


@pytest.mark.parametrize("midpoint", [0, 1, 3, 4, 11, 12, 13, 17, 24])
def test_forever_over_a_bucketed_stream_resumes_exactly(midpoint):
    # 23 items, batch 2, buffer 6: 12 batches per epoch, 3 per buffer.
    def make():
        source = loopline.from_generator(ragged, 23)
        return loopline.forever(bucket(source, length=len, batch_size=2, buffer_size=6, seed=1))

    assert_resumes_exactly(make, midpoint, 30)


def test_forever_resumes_a_dataloader_whose_workers_bucket_their_shards():
    def make():
        stage = bucket(loopline.from_generator(ragged, 23), length=len, batch_size=2, buffer_size=4)
        return loopline.forever(DataLoader(stage, batch_size=None, num_workers=2))

    first_epoch = to_plain(list(islice(make(), 12)))  # workers: 12 and 11 items, 6 batches each
    assert sorted(x[0] for x in flat(first_epoch)) == list(range(23))
    assert_resumes_exactly(make, 8, 20)


def test_a_source_with_its_own_state_dict_is_restored_through_it():
    class Numbers:
        def __init__(self):
            self.next = 0

        def state_dict(self):
            return {"next": self.next}

        def load_state_dict(self, state):
            self.next = state["next"]

        def __iter__(self):
            while self.next < 20:
                self.next += 1
                yield self.next - 1
            self.next = 0

    def make():
        return loopline.forever(
            bucket(Numbers(), length=lambda x: x % 7, batch_size=3, buffer_size=6)
        )

    assert_resumes_exactly(make, 5, 20)


def test_state_after_an_epoch_ends_starts_the_epoch_afresh():
    stage = bucket(range(10), length=lambda x: x, batch_size=2, buffer_size=4)
    fresh = stage.state_dict()
    list(stage)
    assert stage.state_dict() == fresh == {"epoch": 0, "consumed": 0, "buffers": 0, "pending": []}


def test_set_epoch_to_another_epoch_discards_a_loaded_position():
    stage = bucket(range(10), length=lambda x: x, batch_size=2, buffer_size=4)
    batches = iter(stage)
    next(batches)
    state = stage.state_dict()
    stage.load_state_dict(state)
    stage.set_epoch(1)
    assert len(flat(stage)) == 10


def test_bucket_is_an_iterable_dataset():
    stage = bucket([1], length=int, batch_size=1, buffer_size=1)
    assert isinstance(stage, Bucketer)
    assert isinstance(stage, torch.utils.data.IterableDataset)
    assert list(DataLoader(stage, batch_size=None)) == [[1]]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"buffer_size": 10}, ValueError, r"buffer_size must be a multiple of batch_size.*=10.*=4"),
        ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1, got 0"),
        ({"length": 3}, TypeError, "length must be a callable item -> int, got 3"),
        ({"seed": -2}, ValueError, "seed must be an int >= 0, got -2"),
    ],
)
def test_bad_stream_arguments_are_errors_that_say_what_was_wrong(options, error, message):
    options = {"length": len, "batch_size": 4, "buffer_size": 8, **options}
    with pytest.raises(error, match=message):
        bucket([], **options)


@pytest.mark.parametrize(
    ("length", "error", "message"),
    [
        (lambda x: 4 - x, ValueError, "length.item. must be >= 0, got -1 for item 5 of epoch 0"),
        (lambda x: x / 2, TypeError, "length.item. must return an int, got float 0.0 for item 0"),
    ],
)
def test_a_bad_length_names_the_item(length, error, message):
    with pytest.raises(error, match=message):
        list(bucket(range(10), length=length, batch_size=2, buffer_size=10))


def test_incomplete_stream_state_is_rejected_naming_the_missing_keys():
    stage = bucket([], length=len, batch_size=1, buffer_size=1)
    with pytest.raises(KeyError, match=r"\['buffers', 'pending'\]"):
        stage.load_state_dict({"epoch": 0, "consumed": 0})
