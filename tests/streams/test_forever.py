from itertools import islice

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import loopline
from utils import assert_resumes_exactly, count_up, fail_at, shuffled_own_part, to_plain


def map_loader(num_workers=0, size=11, batch_size=3, **options):
    dataset = TensorDataset(torch.arange(size))
    sampler = loopline.EpochSampler(dataset, seed=3)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, **options
    )


def generator_loader(num_workers=0, size=21, batch_size=5, **options):
    # With 2 workers the shards have 11 and 10 items: 3 and 2 batches, uneven on purpose.
    dataset = loopline.from_generator(shuffled_own_part, size, sharded=True)
    dataset.seed = 2
    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, **options)


def plain_epochs(loader, epochs):
    """What a hand-written epoch loop over the same loader yields."""
    batches = []
    for epoch in range(epochs):
        for part in (loader.sampler, loader.dataset):
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)
        batches += [to_plain(batch) for batch in loader]
    return batches


MAKERS = {"map": map_loader, "generator": generator_loader}


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("kind", ["map", "generator"])
def test_forever_gives_exactly_the_batches_of_plain_epochs(kind, num_workers):
    expected = plain_epochs(MAKERS[kind](num_workers), 3)
    got = [to_plain(b) for b in loopline.forever(MAKERS[kind](num_workers), epochs=3)]
    assert got == expected


def test_epoch_and_step_follow_the_batches():
    stream = loopline.forever(DataLoader(range(5), batch_size=2))
    seen = [(stream.epoch, stream.step, batch.tolist()) for batch in islice(stream, 7)]
    assert seen == [
        (0, 1, [0, 1]),
        (0, 2, [2, 3]),
        (0, 3, [4]),
        (1, 4, [0, 1]),
        (1, 5, [2, 3]),
        (1, 6, [4]),
        (2, 7, [0, 1]),
    ]


def test_each_epoch_has_a_fresh_deterministic_order():
    stream = loopline.forever(map_loader(size=12, batch_size=12))
    first, second, third = (next(stream)[0].tolist() for _ in range(3))
    assert sorted(first) == sorted(second) == list(range(12))
    assert first != second != third
    again = loopline.forever(map_loader(size=12, batch_size=12))
    assert next(again)[0].tolist() == first


def test_set_epoch_is_called_on_sampler_batch_sampler_and_dataset_each_epoch():
    calls = []

    class Recording:
        def __init__(self, name, inner):
            self.name, self.inner = name, inner

        def set_epoch(self, epoch):
            calls.append((self.name, epoch))

        def __iter__(self):
            return iter(self.inner)

        def __len__(self):
            return len(self.inner)

    class Data(torch.utils.data.Dataset):
        def set_epoch(self, epoch):
            calls.append(("dataset", epoch))

        def __getitem__(self, i):
            return i

        def __len__(self):
            return 4

    batch_sampler = Recording("batch_sampler", [[0, 1], [2, 3]])
    loader = DataLoader(Data(), batch_sampler=batch_sampler)
    list(loopline.forever(loader, epochs=2))
    assert sorted(calls) == sorted(
        [(name, epoch) for epoch in (0, 1) for name in ("batch_sampler", "dataset")]
    )


def test_an_iterable_that_is_not_a_dataloader_is_reiterated_each_epoch():
    class Batches:
        epoch = None

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __iter__(self):
            return iter([f"e{self.epoch}a", f"e{self.epoch}b"])

    assert list(loopline.forever(Batches(), epochs=2)) == ["e0a", "e0b", "e1a", "e1b"]


def test_epochs_zero_yields_nothing():
    assert list(loopline.forever(map_loader(), epochs=0)) == []


@pytest.mark.parametrize("epochs", [-1, 1.5, True])
def test_invalid_epochs_is_an_error(epochs):
    with pytest.raises(ValueError, match="epochs must be None or an int >= 0"):
        loopline.forever([1], epochs=epochs)


@pytest.mark.parametrize(
    "loader",
    [
        DataLoader(TensorDataset(torch.arange(0)), batch_size=2),
        DataLoader(TensorDataset(torch.arange(1)), batch_size=2, drop_last=True),
        DataLoader(loopline.from_generator(count_up, 0), batch_size=2),
        DataLoader(loopline.from_generator(count_up, 0), batch_size=2, num_workers=2),
        [],
    ],
    ids=["empty-map", "drop-last", "empty-generator", "empty-generator-workers", "empty-list"],
)
def test_a_loader_without_batches_raises_instead_of_spinning(loader):
    with pytest.raises(loopline.EmptyEpoch, match=r"epoch 0 .*produced no batch"):
        next(loopline.forever(loader))


def test_generator_failure_reaches_the_loop_through_forever():
    loader = DataLoader(
        loopline.from_generator(fail_at, 10, 7), batch_size=2, num_workers=2, timeout=60
    )
    with pytest.raises(loopline.GeneratorFailed, match="corrupt record 7 at sample 7"):
        list(loopline.forever(loader, epochs=1))


@pytest.mark.parametrize("kind", ["map", "generator"])
def test_batch_size_none_serves_items_one_by_one(kind):
    loader = MAKERS[kind](num_workers=2, batch_size=None)
    assert [to_plain(b) for b in loopline.forever(loader, epochs=2)] == plain_epochs(loader, 2)


def test_persistent_workers_loader_works_forever():
    loader = map_loader(num_workers=2, persistent_workers=True)
    assert [to_plain(b) for b in loopline.forever(loader, epochs=2)] == plain_epochs(loader, 2)


def test_even_without_distributed_changes_nothing():
    got = [to_plain(b) for b in loopline.forever(loopline.even(map_loader()), epochs=2)]
    assert got == plain_epochs(map_loader(), 2)


# ------------------------------------------------------------------------ resume


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("kind", ["map", "generator"])
@pytest.mark.parametrize("midpoint", [0, 2, 4, 5, 7, 13])
def test_resume_gives_exactly_the_uninterrupted_batches(kind, num_workers, midpoint):
    # map: 4 batches per epoch; generator with 2 workers: 5 (3 + 2), with 0 workers: 5.
    assert_resumes_exactly(lambda: loopline.forever(MAKERS[kind](num_workers)), midpoint, 16)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 30), batch_size=st.integers(1, 7), midpoint=st.integers(0, 40))
def test_resume_at_any_midpoint_of_a_map_style_stream(size, batch_size, midpoint):
    assert_resumes_exactly(
        lambda: loopline.forever(map_loader(size=size, batch_size=batch_size)), midpoint, 45
    )


@settings(max_examples=25, deadline=None)
@given(size=st.integers(1, 30), batch_size=st.integers(1, 7), midpoint=st.integers(0, 30))
def test_resume_at_any_midpoint_of_a_generator_stream(size, batch_size, midpoint):
    assert_resumes_exactly(
        lambda: loopline.forever(generator_loader(size=size, batch_size=batch_size)), midpoint, 35
    )


def test_resume_restores_epoch_and_step():
    stream = loopline.forever(map_loader())
    list(islice(stream, 6))
    restored = loopline.forever(map_loader())
    restored.load_state_dict(stream.state_dict())
    next(restored)
    assert (restored.epoch, restored.step) == (1, 7)


def test_resume_with_epochs_stops_at_the_same_place():
    stream = loopline.forever(map_loader(), epochs=2)
    head = [to_plain(b) for b in islice(stream, 3)]
    restored = loopline.forever(map_loader(), epochs=2)
    restored.load_state_dict(stream.state_dict())
    assert head + [to_plain(b) for b in restored] == plain_epochs(map_loader(), 2)


def test_a_loader_with_its_own_state_dict_is_resumed_through_it():
    class Counter:
        def __init__(self):
            self.start = 0

        def state_dict(self):
            return {"start": self.start}

        def load_state_dict(self, state):
            self.start = state["start"]

        def __iter__(self):
            for i in range(self.start, 3):
                self.start = i + 1
                yield i
            self.start = 0

    assert_resumes_exactly(lambda: loopline.forever(Counter()), 4, 8)


def test_random_sampler_cannot_be_resumed_and_the_error_says_what_to_use():
    stream = loopline.forever(DataLoader(range(8), batch_size=2, shuffle=True))
    with pytest.raises(
        loopline.NotResumable, match=r"sampler RandomSampler does not give.*loopline\.EpochSampler"
    ):
        stream.state_dict()


def test_out_of_order_loader_cannot_be_resumed():
    stream = loopline.forever(map_loader(num_workers=2, in_order=False))
    with pytest.raises(loopline.NotResumable, match="in_order=False"):
        stream.state_dict()


def test_plain_iterable_dataset_cannot_be_resumed():
    class Numbers(IterableDataset):
        def __iter__(self):
            return iter(range(4))

    with pytest.raises(loopline.NotResumable, match=r"Numbers cannot be replayed.*from_generator"):
        loopline.forever(DataLoader(Numbers())).state_dict()


def test_iterable_without_state_dict_cannot_be_resumed():
    with pytest.raises(loopline.NotResumable, match="list has no state_dict"):
        loopline.forever([1, 2]).state_dict()


def test_load_state_dict_after_iterating_is_an_error():
    stream = loopline.forever(map_loader())
    next(stream)
    with pytest.raises(RuntimeError, match="already started"):
        stream.load_state_dict(stream.state_dict())


def test_state_from_another_kind_of_loader_is_rejected():
    state = loopline.forever(map_loader()).state_dict()
    with pytest.raises(ValueError, match=r"saved from a map loader but this forever.. wraps a"):
        loopline.forever(generator_loader()).load_state_dict(state)


def test_state_from_another_worker_count_is_rejected():
    state = loopline.forever(generator_loader(num_workers=2)).state_dict()
    with pytest.raises(ValueError, match=r"saved with 2 DataLoader worker.*has 1"):
        loopline.forever(generator_loader(num_workers=0)).load_state_dict(state)


def test_incomplete_state_is_rejected_naming_the_missing_keys():
    with pytest.raises(KeyError, match=r"\['position', 'step'\]"):
        loopline.forever(map_loader()).load_state_dict({"kind": "map", "epoch": 0})


@pytest.mark.parametrize("kind", ["map", "generator"])
def test_close_stops_the_workers_and_ends_the_stream(kind):
    with loopline.forever(MAKERS[kind](num_workers=2)) as stream:
        next(stream)
        workers = stream._order._batches if kind == "map" else stream._order._tagged
        processes = list(workers._workers)
    assert not any(process.is_alive() for process in processes)
    assert list(stream) == []


def test_spawned_workers_run_forever_exactly_like_plain_epochs():
    options = dict(num_workers=2, multiprocessing_context="spawn")
    got = [to_plain(b) for b in loopline.forever(generator_loader(**options), epochs=2)]
    assert got == plain_epochs(generator_loader(**options), 2)


def test_seed_reaches_the_generator_in_workers():
    first = generator_loader(num_workers=2)
    second = generator_loader(num_workers=2)
    second.dataset.seed = 99
    assert [to_plain(b) for b in loopline.forever(first, epochs=1)] != [
        to_plain(b) for b in loopline.forever(second, epochs=1)
    ]


def test_a_batched_generator_under_a_batching_loader_is_an_error():
    dataset = loopline.from_generator(count_up, 4, batched=True)
    with pytest.raises(ValueError, match=r"batch_size=2, which would stack 2 of them.*None"):
        loopline.forever(DataLoader(dataset, batch_size=2))


@pytest.mark.parametrize("kind", ["map", "generator"])
def test_after_the_last_epoch_the_loader_is_left_at_that_epoch(kind):
    loader = MAKERS[kind]()
    list(loopline.forever(loader, epochs=2))
    settable = loader.sampler if kind == "map" else loader.dataset
    assert settable.epoch == 1
