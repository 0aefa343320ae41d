"""Lorenz-63 training data: windows of consecutive states, observed with noise on request."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from loopline import forever, from_generator
from loopline.demo import lorenz


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_noise_is_gaussian_of_the_asked_std_on_the_same_states() -> None:
    clean = lorenz.observe(64, 200, 0.0, generator())
    noisy = lorenz.observe(64, 200, 0.05, generator())
    difference = noisy - clean  # [L+1, N, 3]
    assert abs(float(difference.mean())) < 2e-3
    assert torch.allclose(difference.std(dim=(0, 1)), torch.full((3,), 0.05), rtol=0.02)


def test_windows_are_consecutive_rk4_steps_of_one_trajectory() -> None:
    batch = next(lorenz.windows(8, 40, 5, 16))  # [B, W+1, 3], normalized
    assert batch.shape == (16, 6, 3)
    mean, std = torch.tensor(lorenz.MEAN), torch.tensor(lorenz.STD)
    states = batch.double() * std + mean  # back in the system's units
    stepped = lorenz.rk4(states[:, :-1])
    assert torch.allclose(stepped, states[:, 1:], atol=1e-4)


def test_an_epoch_yields_every_window_once() -> None:
    batches = list(lorenz.windows(4, 30, 5, 8))  # 4 * 26 windows: 13 batches of 8
    assert len(batches) == 13
    firsts = {tuple(w[0].tolist()) for b in batches for w in b}
    assert len(firsts) == 4 * 26


def test_spun_up_states_are_on_the_attractor_not_near_a_fixed_point() -> None:
    # A short spin-up leaves some trajectories spiralling slowly near (+-8.5, +-8.5, 27);
    # after 50 time units every one moves its own spread away within a Lyapunov time.
    states = lorenz.normalize(lorenz.integrate(lorenz.random_states(256, generator(1)), 110))
    moved = (states - states[:1]).square().mean(dim=-1).sqrt().amax(dim=0)  # [N]
    assert bool((moved > 0.5).all())


def test_a_resumed_stream_seeks_to_the_same_batches() -> None:
    def stream() -> object:
        dataset = from_generator(
            lorenz.windows, 4, 30, 5, 8, 0.01, sharded=True, batched=True, seekable=True, seed=3
        )
        return forever(DataLoader(dataset, batch_size=None))

    whole = stream()
    expected = [next(whole) for _ in range(20)]  # 13 batches an epoch: into the second
    first = stream()
    for _ in range(15):
        next(first)
    resumed = stream()
    resumed.load_state_dict(first.state_dict())
    for batch in expected[15:]:
        assert torch.equal(next(resumed), batch)
