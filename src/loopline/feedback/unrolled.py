"""What one unrolled training pass gives back: `Unrolled`, shared by `unroll`,
`unroll_windows` and `pushforward` (and the whole-window call), so each can build it
without importing the others."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Unrolled:
    """One unrolled pass.

    Attributes:
        loss: the weighted mean of the step losses, a scalar ready for `backward()`.
        step_losses: `[T]` every step's loss (with its graph).
        outputs: `[T, B, ...]` every step's output.
        state: the final recurrent state (None without state).
        carry: the input(s) the next step would take, `[B, ...]` (or `[d, B, ...]` with
            `delay=d`), detached: where `unroll_windows` goes on from.

    Example:
        >>> import torch, loopline
        >>> double = lambda x: 2 * x
        >>> out = loopline.unroll(double, torch.ones(1, 1), torch.zeros(3, 1, 1),
        ...                       loss_fn=torch.nn.functional.mse_loss)
        >>> out.outputs.flatten().tolist(), out.step_losses.tolist(), out.loss.item()
        ([2.0, 4.0, 8.0], [4.0, 16.0, 64.0], 28.0)
        >>> out.carry.flatten().tolist()  # what step 3 would take
        [8.0]
    """

    loss: torch.Tensor
    step_losses: torch.Tensor
    outputs: torch.Tensor
    state: Any
    carry: torch.Tensor
    k: int | None = None  # pushforward: the steps it took without gradient first
