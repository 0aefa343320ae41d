"""How do I iterate x = f(x) on a batch until each sample has converged?

A fixed-point iteration is a feedback loop whose stop test compares each step's output
with its input: `loopline.rollout(f, x0, max_steps, until=loopline.converged(atol, rtol))`
stops each sample once `|f(x) - x| <= atol + rtol * |x|`, freezes it, and runs the others
on; `trajectory.lengths` says how many steps each sample took.

This example runs two iterations in float64 and checks them against known answers:

  (a) Newton's method for sqrt(a), x <- (x + a / x) / 2, on a batch of a's from 1e-6 to
      1e6, all started at x = 1: quadratic convergence, so a handful of steps each, more
      the further sqrt(a) is from 1;
  (b) x <- cos(x), whose fixed point is the Dottie number 0.739085133215160...: linear
      convergence at rate |sin(x*)| = 0.67, so about 70 steps to a 1e-12 step size.

The stop test measures the step, not the error: near a fixed point with rate r the error is
about step / (1 - r), which is why (b) checks the answer to a looser 1e-10.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

import loopline

DOTTIE = 0.7390851332151606416553120876738734  # the solution of cos(x) = x
MAX_STEPS = 500


class NewtonSqrt(nn.Module):
    """One Newton step for x^2 = a, per sample: `forward(x: [B, 1]) -> [B, 1]`."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("a", a)  # a: [B, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x + self.a / x)


def newton_sqrt() -> bool:
    print("(a) Newton's method for sqrt(a), started at x = 1")
    a = torch.tensor([1e-6, 0.25, 2.0, 10.0, 1e3, 1e6], dtype=torch.float64)[:, None]
    trajectory = loopline.rollout(
        NewtonSqrt(a), torch.ones_like(a), MAX_STEPS, until=loopline.converged(atol=0, rtol=1e-13)
    )
    print(f"    {'a':>8}  steps  {'result':>18}  error vs math.sqrt")
    errors = []
    for value, steps, root in zip(
        a[:, 0].tolist(), trajectory.lengths.tolist(), trajectory.last[:, 0].tolist(), strict=True
    ):
        errors.append(abs(root - math.sqrt(value)) / math.sqrt(value))
        print(f"    {value:8g}  {steps:5d}  {root:18.12g}  {errors[-1]:.1e}")
    return max(errors) < 1e-14 and bool((trajectory.lengths < MAX_STEPS).all())


def cosine() -> bool:
    print("(b) x <- cos(x) from five starting points")
    x0 = torch.tensor([-3.0, -1.0, 0.0, 0.7, 2.0], dtype=torch.float64)[:, None]
    trajectory = loopline.rollout(
        torch.cos, x0, MAX_STEPS, until=loopline.converged(atol=1e-12, rtol=0)
    )
    error = (trajectory.last - DOTTIE).abs().max().item()
    print(f"    starts {x0[:, 0].tolist()}")
    print(f"    steps  {trajectory.lengths.tolist()}")
    print(f"    result {trajectory.last[0, 0].item():.12f}, max error {error:.1e}")
    return error < 1e-10 and bool((trajectory.lengths < MAX_STEPS).all())


def main() -> None:
    started = time.perf_counter()
    found = newton_sqrt() & cosine()
    print(f"fixed points found: {found}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    if not found:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
