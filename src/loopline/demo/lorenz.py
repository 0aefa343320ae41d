"""Lorenz-63 by fourth-order Runge-Kutta, and a generator of training windows from it.

The system (sigma 10, rho 28, beta 8/3) is integrated with a fixed step `DT = 0.01` in
float64, vectorized over a batch of states `[N, 3]`. Trajectories start from random
points, run 50 time units onto the attractor (`SPIN_UP` coarse steps: a shorter spin-up
leaves some spiralling slowly near a fixed point, transients easy to forecast), and
are then recorded. `windows` is the
generator behind the demo's stream: each (shard, epoch) draws its own initial
conditions from `current_shard()`'s seed, epoch and index, so every worker and every
epoch sees new data and a rerun with the same seed sees the same. With `noise`, the
training windows are observations: each state plus Gaussian noise of `noise` times each
coordinate's spread; held-out trajectories stay clean, the truth a forecast is scored on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from loopline import Shard, current_shard

SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0
DT = 0.01
LYAPUNOV_EXPONENT = 0.906  # the largest one, per time unit
LYAPUNOV_STEPS = 1 / (LYAPUNOV_EXPONENT * DT)  # steps per Lyapunov time, about 110
SPIN_UP, SPIN_UP_DT = 1000, 0.05  # from a random point onto the attractor: 50 time units
# Mean and std of each coordinate on the attractor (from 1.3 million states): the
# demo's models see normalized states.
MEAN = (0.0, 0.0, 23.6)
STD = (7.9, 9.0, 8.5)


def lorenz(s: torch.Tensor) -> torch.Tensor:
    """The vector field ds/dt at states `s: [..., 3]`.

    Example:
        >>> import torch
        >>> lorenz(torch.tensor([1.0, 1.0, 1.0]))
        tensor([ 0.0000, 26.0000, -1.6667])
    """
    x, y, z = s.unbind(-1)
    return torch.stack([SIGMA * (y - x), x * (RHO - z) - y, x * y - BETA * z], dim=-1)


def rk4(s: torch.Tensor, dt: float = DT) -> torch.Tensor:
    """One Runge-Kutta 4 step of length `dt` from states `s: [..., 3]`."""
    k1 = lorenz(s)
    k2 = lorenz(s + dt / 2 * k1)
    k3 = lorenz(s + dt / 2 * k2)
    k4 = lorenz(s + dt * k3)
    return s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def random_states(
    count: int, generator: torch.Generator, *, callback: Callable[[int], None] | None = None
) -> torch.Tensor:
    """`[count, 3]` float64 random points taken `SPIN_UP` steps onto the attractor.

    The spin-up steps are five times the recorded ones: RK4 is still stable there, and
    where a trajectory lands matters, not how exactly it got there."""
    s = torch.randn(count, 3, generator=generator, dtype=torch.float64) * 10
    for step in range(1, SPIN_UP + 1):
        s = rk4(s, SPIN_UP_DT)
        if callback is not None and step % 100 == 0:
            callback(100)
    return s


def integrate(
    s: torch.Tensor, steps: int, *, callback: Callable[[int], None] | None = None
) -> torch.Tensor:
    """The trajectories `[steps + 1, N, 3]` from states `s: [N, 3]` (the first row is `s`).

    `callback(done)` is called every 100 steps, e.g. to move a progress bar.

    Example:
        >>> import torch
        >>> integrate(torch.ones(2, 3), 5).shape
        torch.Size([6, 2, 3])
    """
    states = [s]
    for step in range(1, steps + 1):
        s = rk4(s)
        states.append(s)
        if callback is not None and step % 100 == 0:
            callback(100)
    return torch.stack(states)


def normalize(states: torch.Tensor) -> torch.Tensor:
    """States in units of the attractor's spread (`MEAN`, `STD`), as float32."""
    mean = torch.tensor(MEAN, dtype=states.dtype)
    std = torch.tensor(STD, dtype=states.dtype)
    return ((states - mean) / std).float()


def shard_generator(shard: Shard, *salt: int) -> torch.Generator:
    """A generator seeded from the shard's seed, epoch and index (and `salt`): a different
    stream for every shard and epoch, the same one when a run is repeated or resumed."""
    entropy = [shard.seed, shard.epoch, shard.index, *salt]
    seed = int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator().manual_seed(seed)


def observe(
    trajectories: int, length: int, noise: float, generator: torch.Generator
) -> torch.Tensor:
    """`[length + 1, trajectories, 3]` normalized states from random initial conditions,
    observed with Gaussian noise of std `noise` (in units of each coordinate's spread).

    Example:
        >>> import torch
        >>> observe(4, 10, 0.02, torch.Generator().manual_seed(0)).shape
        torch.Size([11, 4, 3])
    """
    states = normalize(integrate(random_states(trajectories, generator), length))  # [L+1, N, 3]
    if noise > 0:
        states = states + noise * torch.randn(states.shape, generator=generator)
    return states


def windows(
    trajectories: int, length: int, window: int, batch: int, noise: float = 0.0
) -> Iterator[torch.Tensor]:
    """This shard's batches of training windows `[batch, window + 1, 3]` for this epoch.

    For `from_generator(windows, ..., sharded=True, batched=True, seekable=True)`: each
    shard integrates `trajectories` trajectories of `length` steps from its own random
    initial conditions, observes them with `noise` (see `observe`) and yields all their
    windows in a random order, a batch at a time (the last, partial batch is dropped),
    from its `current_shard().start`-th batch: a resumed stream skips the others.
    """
    shard = current_shard()
    generator = shard_generator(shard)
    states = observe(trajectories, length, noise, generator)  # [L+1, N, 3]
    # Trajectory by trajectory, and as a view of every window: a batch is then one
    # index_select of B runs of memory (13 us), not a gather of B * (W+1) rows (97 us).
    rows = states.transpose(0, 1).flatten(0, 1)  # [N * (L+1), 3]: state t of n, row n * (L+1) + t
    every = rows.unfold(0, window + 1, 1).transpose(1, 2)  # [N * (L+1) - W, W+1, 3], a view
    starts = length - window + 1  # window starts per trajectory
    order = torch.randperm(trajectories * starts, generator=generator)
    firsts = order // starts * (length + 1) + order % starts  # each window's first row
    for first in firsts.split(batch)[shard.start : len(firsts) // batch]:
        yield every.index_select(0, first)  # [B, W+1, 3]


def held_out(
    count: int, steps: int, *, seed: int, callback: Callable[[int], None] | None = None
) -> torch.Tensor:
    """`[steps + 1, count, 3]` normalized, noise-free test trajectories from initial
    conditions that no training shard draws (their seed sequence has an extra entry).

    `callback(done)` is called every 100 steps, spin-up included (`SPIN_UP + steps`)."""
    generator = shard_generator(Shard(seed=seed), 1)
    s = random_states(count, generator, callback=callback)
    return normalize(integrate(s, steps, callback=callback))
