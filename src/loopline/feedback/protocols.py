"""The callables a user hands to a rollout or an unrolled loss, each declared once.

A model is any callable `model(x)`, or `model(x, state) -> (y, new_state)`. Around it a
rollout takes a `Feedback` (or `ForcedFeedback`) that turns each output into the next
input, a `StopCriterion` that says which samples are done, and a `StepCallback` that sees
every step. Shapes: `B` is the batch, every sample its own trajectory.
"""

from __future__ import annotations

from typing import Protocol

import torch


class Feedback(Protocol):
    """`feedback(y)`: the output `y: [B, ...]` made into the next input `[B, ...]`.

    Example:
        >>> import torch, loopline
        >>> def keep_positive(y):  # a Feedback: clip the prediction before feeding it back
        ...     return y.clamp(min=0)
        >>> t = loopline.rollout(lambda x: x - 1, torch.tensor([[2.0]]), 3, feedback=keep_positive)
        >>> t.outputs.flatten().tolist()
        [1.0, 0.0, -1.0]
    """

    def __call__(self, y: torch.Tensor, /) -> torch.Tensor: ...


class ForcedFeedback(Protocol):
    """`feedback(y, forcing_t)`: the output and step t's exogenous input made into the next input.

    Example:
        >>> import torch, loopline
        >>> def add(y, forcing_t):  # a ForcedFeedback: the output plus a known input
        ...     return y + forcing_t
        >>> forcing = torch.tensor([[[10.0]], [[20.0]], [[30.0]]])  # [T, B, 1]
        >>> t = loopline.rollout(lambda x: x, torch.zeros(1, 1), 3, forcing=forcing, feedback=add)
        >>> t.outputs.flatten().tolist()
        [0.0, 10.0, 30.0]
    """

    def __call__(self, y: torch.Tensor, forcing_t: torch.Tensor, /) -> torch.Tensor: ...


class StopCriterion(Protocol):
    """`until(y, x)`: a bool `[B]`, true for the samples whose step from `x` to `y` ends them.

    Example:
        >>> import torch, loopline
        >>> def reached(y, x):  # a StopCriterion: done once the first feature reaches 3
        ...     return y[:, 0] >= 3
        >>> t = loopline.rollout(lambda x: x + 1, torch.tensor([[0.0], [2.0]]), 5, until=reached)
        >>> t.lengths.tolist()
        [3, 1]
    """

    def __call__(self, y: torch.Tensor, x: torch.Tensor, /) -> torch.Tensor: ...


class StepCallback(Protocol):
    """`callback(t, y)`: called after step t with its output `y: [B, ...]`; returns nothing.

    Example:
        >>> import torch, loopline
        >>> seen = []
        >>> def record(t, y):  # a StepCallback
        ...     seen.append((t, y.item()))
        >>> _ = loopline.rollout(lambda x: 2 * x, torch.ones(1, 1), 3, callback=record)
        >>> seen
        [(0, 2.0), (1, 4.0), (2, 8.0)]
    """

    def __call__(self, t: int, y: torch.Tensor, /) -> None: ...
