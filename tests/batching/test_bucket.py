import io
from itertools import islice

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

import loopline
from loopline.batching.bucket import BUFFER_BATCHES, Bucketer, bucket
from utils import (
    assert_resumes_exactly,
    flat,
    padding_efficiency,
    ragged,
    to_plain,
    uniform_lengths,
)

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


def test_a_lambda_length_under_spawn_says_to_define_a_module_level_function():
    stage = bucket([torch.ones(2)] * 4, length=lambda item: len(item), batch_size=2, buffer_size=2)
    loader = DataLoader(stage, batch_size=None, num_workers=1, multiprocessing_context="spawn")
    with pytest.raises(TypeError, match=r"bucket: the function .*<lambda> .*it is a lambda"):
        next(iter(loader))


def test_the_default_buffer_holds_128_batches_as_the_readme_call_expects():
    items = [torch.zeros(n % 50) for n in range(1000)]
    stage = bucket(items, length=len, batch_size=4)  # the README's call, without buffer_size
    assert stage.buffer_size == BUFFER_BATCHES * 4 == 512
    assert sorted(len(item) for batch in stage for item in batch) == sorted(map(len, items))
    with pytest.raises(ValueError, match="bucket: batch_size must be an int >= 1, got 0"):
        bucket(items, length=len, batch_size=0)
