"""What a rollout gives back: its `Trajectory`, or `RolloutDiverged` when it blew up.

Every sample of a batch is its own trajectory, so the result says per sample how many
steps it took and whether it diverged, beside the outputs stacked `[T, B, ...]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


class RolloutDiverged(RuntimeError):
    """A rollout produced NaN or Inf; `step` and `samples` say where it first happened.

    Example:
        >>> import torch, loopline
        >>> blow_up = lambda x: x * torch.tensor([[1.0], [1e30]])
        >>> try:
        ...     loopline.rollout(blow_up, torch.ones(2, 1), 10)
        ... except loopline.RolloutDiverged as error:
        ...     print(error.step, error.samples)
        1 [1]
    """

    def __init__(self, message: str, step: int = -1, samples: list[int] | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.samples = samples or []


@dataclass
class Trajectory:
    """What a rollout produced.

    Attributes:
        outputs: `[T, B, ...]` every step's output (None with `keep="last"`).
        last: `[B, ...]` the last output of each sample.
        lengths: `[B]` int64, the steps each sample took before it was done or diverged.
        diverged: `[B]` bool, samples stopped for a non-finite output.
        state: the final recurrent state (None without state).

    Example:
        >>> import torch, loopline
        >>> reached_3 = lambda y, x: y[:, 0] >= 3
        >>> t = loopline.rollout(lambda x: x + 1, torch.tensor([[0.0], [1.0]]), 5, until=reached_3)
        >>> t.outputs[:, :, 0].tolist()  # a done sample repeats its last output
        [[1.0, 2.0], [2.0, 3.0], [3.0, 3.0], [3.0, 3.0], [3.0, 3.0]]
        >>> t.lengths.tolist(), t.last.flatten().tolist(), t.diverged.tolist()
        ([3, 2], [3.0, 3.0], [False, False])
    """

    outputs: torch.Tensor | None
    last: torch.Tensor
    lengths: torch.Tensor
    diverged: torch.Tensor
    state: Any
