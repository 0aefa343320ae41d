"""The demo's forecaster, trained three ways over an endless stream of windows.

Every method takes the same Adam steps (cosine learning rate) on the same batches of
windows `[W + 1, B, D]`, drawn from a `forever` stream, on a curriculum: the first
three quarters of the steps train one step ahead from the true state, the rest with the
method's own loss:

- "teacher forcing": one step ahead throughout, from the first pair of each window;
- "unroll": the model runs W steps on its own outputs, the full gradient flows back;
- "pushforward": k steps without gradient (k random in [0, 4]), then one with it.

The one-step phase is the same for all three (same seed, same batches, same loss), so
it is trained once: `train` hands its state to `fork`, and the feedback methods go on
from there, bitwise as if each had trained from scratch. `train` can stop after any step
and go on later from a checkpoint dict, bitwise as if it had not stopped: the stream's
position, the optimizer, the schedule and the random draws are all part of the state.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from loopline import forever, pushforward, unroll
from loopline.demo import checkpoint as ckpt
from loopline.demo import models
from loopline.demo._progress import progress

METHODS = ("teacher forcing", "unroll", "pushforward")
MAX_UNROLL = 4  # pushforward's most steps without gradient
LOG_EVERY = 50  # steps between reads of the loss (each read waits for the device)
MSE = nn.MSELoss()


def one_step_steps(steps: int) -> int:
    """The steps of the curriculum's one-step phase, shared by every method.

    Example:
        >>> one_step_steps(20000)
        15000
    """
    return steps * 3 // 4


def method_loss(
    method: str,
    model: nn.Module,
    window: torch.Tensor,
    generator: torch.Generator,
    *,
    one_step: bool = False,
) -> torch.Tensor:
    """The loss of one batch of windows `[W + 1, B, D]` for `method` (one step ahead,
    whatever the method, in the curriculum's first phase: `one_step`)."""
    if method == "teacher forcing" or (one_step and method in METHODS):
        # One pair per window: a window's pairs are consecutive states, nearly one sample,
        # so B windows' first pairs teach more per second than B / W windows' every pair.
        return MSE(model(window[0]), window[1])  # [B, D]: the input is the truth
    if method == "unroll":
        return unroll(model, window[0], window[1:], loss_fn=MSE).loss
    if method == "pushforward":
        k = min(MAX_UNROLL, len(window) - 2)
        return pushforward(
            model, window[0], window[1:], loss_fn=MSE, max_unroll=k, generator=generator
        ).loss
    raise ValueError(f"unknown method {method!r}; the methods are {', '.join(METHODS)}")


@dataclass
class Trained:
    """A trained model and what its training cost: seconds and windows seen."""

    model: nn.Module
    seconds: float
    samples: int


def train(
    method: str,
    loader: DataLoader,
    *,
    dim: int,
    steps: int,
    seed: int,
    forecaster: str = "quadratic",
    sample: torch.Tensor | None = None,
    lr: float = 2e-3,
    device: torch.device,
    resume: dict[str, Any] | None = None,
    save: Callable[[dict[str, Any]], None] | None = None,
    save_every: int = 0,
    fork: Callable[[dict[str, Any]], None] | None = None,
    show: bool = True,
) -> Trained:
    """Train a fresh `forecaster` with `method` for `steps` batches of `loader`.

    Args:
        method: one of `METHODS`.
        loader: a DataLoader of windows `[B, W + 1, D]`; it must be resumable by
            `forever` (e.g. over `from_generator`) for `resume` to be exact.
        dim: D, the number of features.
        steps: optimizer steps.
        seed: fixes the initial weights (where they are random) and pushforward's draws.
        forecaster: the model, one of `models.MODELS`.
        sample: `[..., D]` training states to fit the quadratic model's whitening on
            (see `models.QuadraticField`); None leaves it the identity.
        lr: Adam's initial learning rate (cosine decay to 0 over `steps`).
        device: where the model trains.
        resume: a state that `save` received: go on from there.
        save: called with the state every `save_every` steps (not after the last).
        save_every: steps between saves; 0 never saves.
        fork: called with a copy of the state (as `save` gets it) when the one-step
            phase ends, after `one_step_steps(steps)` steps; resumed from it, any method
            goes on as if it had trained those steps itself.
        show: draw a progress bar.
    """
    with torch.random.fork_rng(devices=[]):  # the caller's global RNG stays untouched
        torch.manual_seed(seed)
        model = models.build(forecaster, dim, None if sample is None else sample.reshape(-1, dim))
    model = model.to(device)
    optimizer = _adam(model, lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    stream = forever(loader)
    step, seconds, samples = 0, 0.0, 0
    if resume is not None:
        model.load_state_dict(resume[ckpt.MODEL])
        # A copy: Adam would take the tensors as its own and update them in place.
        optimizer.load_state_dict(copy.deepcopy(resume[ckpt.OPTIMIZER]))
        schedule.load_state_dict(resume[ckpt.SCHEDULE])
        generator.set_state(resume[ckpt.GENERATOR])
        stream.load_state_dict(resume[ckpt.STREAM])
        step, seconds, samples = resume[ckpt.STEP], resume[ckpt.SECONDS], resume[ckpt.SAMPLES]
    bar = progress(steps, f"training: {method}", enabled=show)
    bar.update(step)
    shown = step  # the step the bar and the loss were last updated at
    running = torch.zeros((), device=device)  # loss summed on the device, read rarely
    started = time.perf_counter() - seconds
    switch = one_step_steps(steps)

    def state() -> dict[str, Any]:
        return {
            ckpt.STEP: step,
            ckpt.MODEL: model.state_dict(),
            ckpt.OPTIMIZER: optimizer.state_dict(),
            ckpt.SCHEDULE: schedule.state_dict(),
            ckpt.GENERATOR: generator.get_state(),
            ckpt.STREAM: stream.state_dict(),
            ckpt.SECONDS: time.perf_counter() - started,
            ckpt.SAMPLES: samples,
        }

    try:
        with stream:
            while step < steps:
                if fork is not None and step == switch:
                    fork(copy.deepcopy(state()))  # a copy: the live tensors change on
                # A numpy batch from the workers (see run.py), or a tensor.
                batch = torch.as_tensor(next(stream))  # [B, W+1, D]
                window = batch.to(device, non_blocking=True).transpose(0, 1)  # [W+1, B, D]
                loss = method_loss(method, model, window, generator, one_step=step < switch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                running += loss.detach()
                step, samples = step + 1, samples + window.shape[1]
                if step % LOG_EVERY == 0 or step == steps:
                    bar.update(step - shown)
                    bar.note(f"loss {float(running) / (step - shown):.2e}")
                    running.zero_()
                    shown = step
                if save is not None and save_every and step % save_every == 0 and step < steps:
                    save(state())
    finally:
        bar.close()
    return Trained(model.eval(), time.perf_counter() - started, samples)


def _adam(model: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where this torch supports it (about a third
    faster for a model this small; older versions have no fused Adam on the CPU)."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(model.parameters(), lr=lr)
