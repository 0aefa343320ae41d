"""forever: the batches of plain epochs without the boundary stall, epoch and step,
set_epoch on every part, empty and failing loaders, and closing its workers."""

from itertools import islice

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import loopline
from utils import (
    MAKERS,
    count_up,
    fail_at,
    generator_loader,
    map_loader,
    plain_epochs,
    to_plain,
)


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
