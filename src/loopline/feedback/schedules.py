"""Decay schedules for scheduled sampling (Bengio et al., 2015): `p(step)` in [0, 1].

Each function returns the probability, at training step `step`, of feeding the ground
truth rather than the model's own output. Start near 1 (teacher forcing) and decay
towards 0 (free running) as the model improves.

Example:
    >>> from loopline import schedules
    >>> p = schedules.inverse_sigmoid(k=10)
    >>> [round(p(step), 2) for step in (0, 20, 40, 60)]
    [0.91, 0.58, 0.15, 0.02]
"""

from __future__ import annotations

import math
from collections.abc import Callable

from loopline._checks import check_int


def linear(start: float = 1.0, end: float = 0.0, steps: int = 10_000) -> Callable[[int], float]:
    """From `start` to `end` in `steps` training steps, then `end`.

    Example:
        >>> from loopline import schedules
        >>> p = schedules.linear(1.0, 0.0, steps=4)
        >>> [p(step) for step in range(6)]
        [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    """
    check_int("schedules.linear", "steps", steps, 1)

    def p(step: int) -> float:
        return start + (end - start) * min(step, steps) / steps

    return p


def exponential(k: float = 0.999) -> Callable[[int], float]:
    """`k ** step`, with 0 < k < 1.

    Example:
        >>> from loopline import schedules
        >>> round(schedules.exponential(0.5)(3), 3)
        0.125
    """
    if not 0 < k < 1:
        raise ValueError(f"schedules.exponential: k must be in (0, 1), got {k}")
    return lambda step: k**step


def inverse_sigmoid(k: float = 1000.0) -> Callable[[int], float]:
    """`k / (k + exp(step / k))`, with k >= 1: slow at first, then faster, then slow.

    Example:
        >>> from loopline import schedules
        >>> p = schedules.inverse_sigmoid(10)
        >>> round(p(0), 3), round(p(50), 3)
        (0.909, 0.063)
    """
    if k < 1:
        raise ValueError(f"schedules.inverse_sigmoid: k must be >= 1, got {k}")
    return lambda step: k / (k + math.exp(step / k))
