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
import torch.nn.functional as F
from torch import nn

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
    losses = _flat_losses(loss_fn, ys, truths)
    if losses is not None:
        return losses
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


def _flat_losses(loss_fn: Any, ys: torch.Tensor, truths: torch.Tensor) -> torch.Tensor | None:
    """`[T]` step losses of the common mean-reduced `nn` losses from one flattened call (a
    quarter of vmap's time), each step's mean exactly as the loss takes it; else None."""
    steps = len(ys)
    if getattr(loss_fn, "reduction", None) != "mean":
        return None
    if type(loss_fn) in (nn.MSELoss, nn.L1Loss) and ys.shape == truths.shape:
        elementwise = F.mse_loss if type(loss_fn) is nn.MSELoss else F.l1_loss
        return elementwise(ys, truths, reduction="none").reshape(steps, -1).mean(1)
    if (
        type(loss_fn) is nn.CrossEntropyLoss
        and loss_fn.weight is None
        and ys.dim() == 3  # [T, B, classes] against class indices [T, B]
        and truths.shape == ys.shape[:2]
        and not truths.is_floating_point()
    ):
        ignore = loss_fn.ignore_index
        each = F.cross_entropy(
            ys.reshape(-1, ys.shape[-1]),
            truths.reshape(-1),
            reduction="none",
            ignore_index=ignore,
            label_smoothing=loss_fn.label_smoothing,
        ).reshape(steps, -1)
        # The mean over the targets not ignored, as cross_entropy's own mean takes it.
        return each.sum(1) / (truths != ignore).sum(1)
    return None
