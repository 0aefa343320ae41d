"""The stage protocols: loopline's own stages follow the ones they claim, and the probes
find them (and only them) in a loader, its samplers and its dataset."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

import loopline
from loopline.streams.protocols import (
    Checkpointable,
    EpochAware,
    EpochIterable,
    announce_epoch,
    epoch_items,
    is_checkpointable,
    is_replayable,
    yields_batches,
)


def count(n):
    yield from range(n)


def test_loopline_stages_follow_the_protocols_they_claim():
    dataset = loopline.from_generator(count, 4, batched=True)
    assert isinstance(dataset, EpochAware) and isinstance(dataset, EpochIterable)
    assert is_replayable(dataset) and yields_batches(dataset)
    sampler = loopline.EpochSampler(4)
    assert isinstance(sampler, EpochAware) and is_replayable(sampler)
    buckets = loopline.BucketSampler([1, 2, 3], batch_size=2)
    assert isinstance(buckets, EpochAware) and is_replayable(buckets)
    stage = loopline.bucket(range(4), length=int, batch_size=2, buffer_size=2)
    assert isinstance(stage, EpochAware) and isinstance(stage, Checkpointable)
    stream = loopline.forever(DataLoader(range(3)))
    assert is_checkpointable(stream) and not isinstance(stream, EpochAware)
    assert is_checkpointable(loopline.scheduled_sampling(0.5))


def test_a_plain_list_follows_none():
    assert not is_checkpointable([1]) and not is_replayable([1]) and not yields_batches([1])
    assert not isinstance([1], EpochAware)


def test_a_stage_with_half_the_checkpoint_protocol_is_not_checkpointable():
    class SavesOnly:
        def state_dict(self):
            return {}

    assert not is_checkpointable(SavesOnly())


class Recorder:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def set_epoch(self, epoch):
        self.log.append((self.name, epoch))

    def __iter__(self):
        return iter([0, 1, 2])

    def __len__(self):
        return 3


def test_announce_epoch_reaches_the_loader_sampler_and_dataset_once_each():
    log = []
    dataset = Recorder(log, "dataset")
    loader = DataLoader(dataset, sampler=Recorder(log, "sampler"), batch_size=None)
    announce_epoch(loader, 3)
    assert sorted(log) == [("dataset", 3), ("sampler", 3)]
    log.clear()
    announce_epoch(dataset, 5)  # the same object as loader and as its own dataset: once
    assert log == [("dataset", 5)]


def test_epoch_items_asks_for_the_epoch_without_setting_a_shared_one():
    dataset = loopline.from_generator(lambda: iter([torch.tensor(loopline.current_shard().epoch)]))
    dataset.set_epoch(1)
    assert [int(item) for item in epoch_items(dataset, 4)] == [4]
    assert dataset.epoch == 1  # iter_epoch left the shared epoch alone
    log = []
    assert list(epoch_items(Recorder(log, "plain"), 2)) == [0, 1, 2]
    assert log == [("plain", 2)]  # no iter_epoch: set_epoch, then iter


def test_an_epoch_sampler_inside_a_batch_sampler_gets_a_new_order_each_epoch():
    # Issue 12, item 6: set_epoch did not reach a sampler nested in a BatchSampler, so
    # every epoch repeated epoch 0's order.
    from torch.utils.data import BatchSampler

    sampler = loopline.EpochSampler(12, seed=3)
    loader = DataLoader(list(range(12)), batch_sampler=BatchSampler(sampler, 4, False))
    stream = loopline.forever(loader, epochs=3)
    epochs: dict[int, list[int]] = {}
    for batch in stream:
        epochs.setdefault(stream.epoch, []).extend(batch.tolist())
    reference = loopline.EpochSampler(12, seed=3)
    assert {e: order for e, order in epochs.items()} == {
        e: reference.order(e).tolist() for e in range(3)
    }
    assert epochs[0] != epochs[1]
