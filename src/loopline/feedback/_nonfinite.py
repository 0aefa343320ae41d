"""NaN and Inf in a rollout: the guard of `on_nonfinite="raise"`, and the per-sample test.

The guard reads the host once per check: the outputs since the last one are stacked (see
`Outputs`) and summed, and NaN or Inf anywhere makes the sum non-finite. Only then are they
searched, step by step, for the first bad step and its samples, so the error names them
although the host looked only every `check_every` steps; a sum that merely overflowed
finds nothing and runs on. `nonfinite` flags the samples of one output on the device,
for `on_nonfinite="stop"` to freeze them.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from loopline.feedback._rollout_store import Outputs
from loopline.feedback.trajectory import RolloutDiverged


def check_finite(kept: Outputs, t: int) -> None:
    """Raise `RolloutDiverged` if an output since the last check (up to step t) is bad."""
    finite, recent = kept.finite()
    if finite:
        return
    found = first_nonfinite(recent)
    if found is None:
        return  # finite outputs whose sum overflowed
    offset, samples = found
    step = t - len(recent) + 1 + offset
    raise RolloutDiverged(
        f"rollout diverged: non-finite output at step {step} in samples {samples} "
        "(pass on_nonfinite='stop' to freeze those samples and run the others on)",
        step,
        samples,
    )


def first_nonfinite(recent: Iterable[torch.Tensor]) -> tuple[int, list[int]] | None:
    """(offset in `recent`, sample indices) of the first output with NaN or Inf."""
    for offset, y in enumerate(recent):
        if not y.is_floating_point():
            continue
        bad = nonfinite(y)  # [B]
        if bool(bad.any()):
            return offset, bad.nonzero().flatten().tolist()
    return None


def nonfinite(y: torch.Tensor) -> torch.Tensor:
    """`[B]` bool, the samples of `y: [B, ...]` with a NaN or Inf."""
    # finite * 0 is 0 and inf * 0 is NaN, so a sample's sum of y * 0 is NaN exactly when
    # one of its elements is not finite: three cheap ops (no overflow), isfinite's five.
    return (y.detach() if y.requires_grad else y).flatten(1).mul(0).sum(1).isnan()
