"""A teacher-forced window in one model call: `unroll(..., inputs=..., whole=True)`.

When every input of a window is known in advance (teacher forcing), nothing is fed back,
so the W single steps can be one call on `[W, B, ...]`: a fused `nn.LSTM` or `nn.GRU`
runs its time loop in one kernel, a causal transformer sees the window at once. The
losses are those of the single steps (the same arithmetic, up to the fused kernel's
rounding), one per step, weighted as `unroll` weights them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from loopline.feedback._rollout_checks import split_output
from loopline.feedback._unroll_checks import check_target, weighted_mean
from loopline.feedback.unrolled import Unrolled


def whole_window(
    name: str,
    model: Callable[..., Any],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    state: Any,
    weights: Sequence[float] | torch.Tensor | None,
    strict: bool,
    fed: Callable[[torch.Tensor], torch.Tensor],
) -> Unrolled:
    """The `Unrolled` of `steps` teacher-forced steps, made by one call of `model`."""

    xs = inputs[:steps]  # [T, B, ...]
    ys, state = split_output(
        model(xs) if state is None else model(xs, state), state is not None, 0, name
    )
    if ys.dim() == 0 or ys.shape[0] != steps:
        raise ValueError(
            f"{name}: with whole=True the model took inputs {tuple(xs.shape)} and returned "
            f"{tuple(ys.shape)}; it must return one output per step, time first [T, B, ...]"
        )
    truths = targets[:steps]
    if strict:
        check_target(name, ys[0], truths[0], 0)
    step_losses = step_losses_of(name, loss_fn, ys, truths)
    # The next window's first input: the true one if given, else the last prediction's.
    carry = inputs[steps] if len(inputs) > steps else fed(ys[-1])
    loss = weighted_mean(name, step_losses, weights, steps)
    return Unrolled(loss, step_losses, ys, state, carry.detach())


def step_losses_of(
    name: str,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ys: torch.Tensor,
    truths: torch.Tensor,
) -> torch.Tensor:
    """`[T]`: `loss_fn(ys[t], truths[t])` for every t, as one vectorised call where the loss
    allows it (`torch.vmap`: about a third of the time of T calls), else one call a step."""
    try:
        losses = torch.vmap(loss_fn)(ys, truths)
    except Exception:  # a loss vmap cannot trace (data-dependent Python, .item())
        losses = torch.stack([loss_fn(ys[t], truths[t]) for t in range(len(ys))])
    if losses.dim() != 1:
        raise ValueError(
            f"{name}: loss_fn returned a tensor of shape {tuple(losses.shape[1:])} at step 0; "
            "it must return a scalar (e.g. a loss with reduction='mean')"
        )
    return losses
