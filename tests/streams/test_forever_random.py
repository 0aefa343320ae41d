"""Random draws resume (issue 12, item 4): a `__getitem__` or a generator drawing from the
global torch, numpy and Python RNGs used to resume right in epoch 0 and silently differ
from the uninterrupted run in epoch 1. `forever` seeds those RNGs per sample from (seed,
epoch, index), and without workers leaves the caller's own RNG streams untouched."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import loopline
from _resized import generator_job, run_job
from utils import assert_resumes_exactly, to_plain


class Noisy(Dataset):
    """Sample i: (i, a torch.rand draw), as a random transform would make it."""

    def __len__(self):
        return 12

    def __getitem__(self, index):
        return torch.tensor([float(index), torch.rand(()).item()])


def noisy_items(n):
    """Item i: i with a draw from each of torch, numpy and random."""
    for i in range(n):
        yield torch.tensor([float(i), torch.randn(()).item(), np.random.rand(), random.random()])


def map_loader(workers, world_size=1, rank=0, batch_size=3):
    sampler = loopline.EpochSampler(12, seed=4, rank=rank, world_size=world_size)
    return DataLoader(Noisy(), batch_size=batch_size, sampler=sampler, num_workers=workers)


def generator_loader(workers, batch_size=3):
    dataset = loopline.from_generator(noisy_items, 12, seed=4)
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("make", [map_loader, generator_loader])
@pytest.mark.parametrize("midpoint", [2, 9])  # in epoch 0 and in epoch 2 (4 batches each)
def test_random_draws_resume_exactly(make, workers, midpoint):
    assert_resumes_exactly(lambda: loopline.forever(make(workers)), midpoint, 13)


@pytest.mark.parametrize("make", [map_loader, generator_loader])
def test_without_reseeding_the_draws_do_not_resume(make):
    # The failure the issue measured, kept as a check that the test above can fail.
    with pytest.raises(AssertionError):
        assert_resumes_exactly(lambda: loopline.forever(make(0), reseed=False), 6, 9)


@pytest.mark.parametrize("make", [map_loader, generator_loader])
def test_the_draws_do_not_depend_on_the_worker_count(make):
    def values(workers):
        stream = loopline.forever(make(workers), epochs=2)
        return sorted(row for batch in stream for row in to_plain(batch))

    assert values(0) == values(2) == values(3)


def test_a_resized_job_draws_the_same_numbers_for_the_same_items():
    make = generator_job(noisy_items, 12, 3)
    whole, _ = run_job(make, 1, [None])
    head, state = run_job(make, 2, [1, 1])
    tail, _ = run_job(generator_job(noisy_items, 12, 2, workers=2), 3, [None] * 3, state)
    rows = lambda flat: sorted(map(tuple, torch.tensor(flat).view(-1, 4).tolist()))  # noqa: E731
    assert rows(head + tail) == rows(whole)


@pytest.mark.parametrize("make", [map_loader, generator_loader])
def test_without_workers_the_callers_rngs_go_on_as_if_nothing_was_drawn(make):
    def callers_draws(with_stream):
        torch.manual_seed(0), np.random.seed(0), random.seed(0)
        stream = loopline.forever(make(0))
        draws = []
        for _ in range(6):
            if with_stream:
                next(stream)
            draws.append((torch.rand(()).item(), np.random.rand(), random.random()))
        stream.close()
        return draws

    assert callers_draws(True) == callers_draws(False)


def test_reseeding_fewer_rngs_leaves_the_others_alone():
    np.random.seed(1)
    expected = np.random.rand()
    np.random.seed(1)
    stream = loopline.forever(generator_loader(0), reseed=("torch",))
    next(stream)
    # Without workers the items drew from numpy's RNG, which was neither seeded nor kept.
    assert np.random.rand() != expected


@pytest.mark.parametrize("reseed", ["jax", ("torch", "cupy"), (), 3])
def test_an_unknown_rng_is_refused_naming_the_choices(reseed):
    with pytest.raises(ValueError, match=r"reseed must be True, False or some of \['torch'"):
        loopline.forever(map_loader(0), reseed=reseed)


def test_a_resume_with_other_rngs_seeded_is_refused_naming_reseed():
    stream = loopline.forever(map_loader(0))
    next(stream)
    state = stream.state_dict()
    with pytest.raises(ValueError, match=r"saved with reseed=\['torch', 'numpy', 'random'\]"):
        loopline.forever(map_loader(0), reseed=False).load_state_dict(state)
