"""Teachers: who decides, per step and sample, whether the truth replaces an output.

A `Teacher` is asked once per training step (`start()`) and returns a `draw(y, truth, t)`
that `unroll` calls at every rollout step with the model's output and its target; the
result is what feeds the following step. `scheduled_sampling(p)` draws per sample with
probability `p` (a float, or a schedule `p(training_step)`), seeded so runs repeat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

Draw = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]

STEP = "step"  # key of ScheduledSampling's state dict


class Teacher(Protocol):
    """Once per training step, returns `draw(y, truth, t) -> the output fed back`.

    Example:
        >>> import torch, loopline
        >>> class EveryOther:  # the truth on even rollout steps, the output on odd ones
        ...     def start(self):
        ...         return lambda y, truth, t: truth if t % 2 == 0 else y
        >>> model = torch.nn.Linear(1, 1)
        >>> out = loopline.unroll(model, torch.ones(2, 1), torch.zeros(4, 2, 1),
        ...                       loss_fn=torch.nn.MSELoss(), teacher=EveryOther())
        >>> out.step_losses.shape
        torch.Size([4])
    """

    def start(self) -> Draw: ...


class ScheduledSampling:
    """Feed the ground truth instead of the model's output with probability `p`.

    Attributes:
        p: a float in [0, 1], or a schedule `p(step)` (see `loopline.schedules`).
        seed: with the training step, fixes every draw.
        step: training steps so far; `start()` advances it (checkpoint it via
            `state_dict()`).

    Example:
        >>> import torch, loopline
        >>> teacher = loopline.ScheduledSampling(loopline.schedules.linear(1.0, 0.0, steps=2))
        >>> y, truth = torch.zeros(3, 1), torch.ones(3, 1)
        >>> teacher.start()(y, truth, 0).flatten().tolist()  # training step 0: p = 1
        [1.0, 1.0, 1.0]
        >>> _ = teacher.start()  # training step 1: p = 0.5
        >>> teacher.start()(y, truth, 0).flatten().tolist()  # training step 2: p = 0
        [0.0, 0.0, 0.0]
        >>> teacher.state_dict()
        {'step': 3}
    """

    def __init__(self, p: float | Callable[[int], float], *, seed: int = 0) -> None:
        if not callable(p):
            _check_probability(p, "p")
        self.p, self.seed, self.step = p, seed, 0

    def start(self) -> Draw:
        p = self.p(self.step) if callable(self.p) else self.p
        _check_probability(p, f"p({self.step})")
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step)
        self.step += 1

        def draw(y: torch.Tensor, truth: torch.Tensor, t: int) -> torch.Tensor:
            # Drawn on the CPU generator for reproducibility on any device.
            use_truth = torch.rand(y.shape[0], generator=generator) < p  # [B]
            use_truth = use_truth.to(y.device, non_blocking=True)
            return torch.where(use_truth.reshape((-1,) + (1,) * (y.dim() - 1)), truth, y)

        return draw

    def state_dict(self) -> dict[str, Any]:
        return {STEP: self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state[STEP])


def scheduled_sampling(p: float | Callable[[int], float], *, seed: int = 0) -> ScheduledSampling:
    """A teacher for `unroll`: per step and sample, the ground truth with probability `p`.

    Args:
        p: a probability, or a schedule `p(training_step)` from `loopline.schedules`.
        seed: makes the draws reproducible.

    Example:
        >>> import torch, loopline
        >>> teacher = loopline.scheduled_sampling(1.0)  # always the truth: teacher forcing
        >>> teacher.start()(torch.zeros(2, 1), torch.ones(2, 1), 0).tolist()
        [[1.0], [1.0]]
    """
    return ScheduledSampling(p, seed=seed)


def _check_probability(p: Any, name: str) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"scheduled_sampling: {name} must be a probability in [0, 1], got {p!r}")
