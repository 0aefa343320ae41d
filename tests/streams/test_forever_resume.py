"""forever's resume: a restored stream continues exactly where the saved one stood, and a
stream that cannot be resumed, or a state that does not fit, is an error that says why."""

from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, IterableDataset

import loopline
from utils import (
    MAKERS,
    assert_resumes_exactly,
    generator_loader,
    map_loader,
    plain_epochs,
    to_plain,
)


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


def test_incomplete_state_is_rejected_naming_the_missing_keys():
    with pytest.raises(
        KeyError, match=r"\['first_workers', 'identity', 'layers', 'ranks', 'rotation'\]"
    ):
        loopline.forever(map_loader()).load_state_dict({"kind": "map", "epoch": 0})
