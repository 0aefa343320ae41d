"""`unroll` in windows: truncated backpropagation through a long horizon, flat in memory.

Each window is an `unroll` of `window` steps that goes on from where the previous one
stopped (its output, or its next true input, and its state, all detached), so a caller
takes `backward()` and an optimizer step per window and the graph held in memory never
exceeds one window, however long the horizon.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from loopline._checks import check_int
from loopline._tree import map_tensors
from loopline.feedback._unroll_checks import check_arguments, check_inputs, check_weights
from loopline.feedback.protocols import Feedback, ForcedFeedback
from loopline.feedback.teacher import Teacher
from loopline.feedback.unroll import Grad, unrolled
from loopline.feedback.unrolled import Unrolled


def unroll_windows(
    model: Callable[..., Any],
    x0: torch.Tensor | None,
    targets: torch.Tensor,
    *,
    window: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int | None = None,
    feedback: Feedback | ForcedFeedback | None = None,
    inputs: torch.Tensor | None = None,
    whole: bool = False,
    forcing: torch.Tensor | None = None,
    state: Any = None,
    grad: Grad = "full",
    teacher: Teacher | None = None,
    delay: int = 1,
    weights: Sequence[float] | torch.Tensor | None = None,
    strict: bool = True,
) -> Iterator[Unrolled]:
    """`unroll` in windows of `window` steps, the state detached between them.

    Call `backward()` and `optimizer.step()` on each window's loss: the graph held in
    memory never exceeds `window` steps, however long the horizon. Each window goes on
    from the previous one's output (or, with `inputs`, its next input) and state
    (detached). Arguments are as for `unroll`; `weights` cover the whole horizon.

    Example:
        >>> import torch, loopline
        >>> model = torch.nn.Linear(2, 2)
        >>> targets = torch.zeros(10, 4, 2)
        >>> parts = loopline.unroll_windows(model, torch.ones(4, 2), targets, window=4,
        ...                                 loss_fn=torch.nn.MSELoss())
        >>> [len(part.step_losses) for part in parts]
        [4, 4, 2]
    """
    check_int("unroll_windows", "window", window, 1)
    x0 = check_inputs(
        "unroll_windows", x0, inputs, targets, steps, forcing, delay, teacher, whole, grad
    )
    total = check_arguments("unroll_windows", targets, steps, grad, delay, x0, forcing)
    check_weights("unroll_windows", weights)
    all_weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    for start in range(0, total, window):
        stop = min(start + window, total)
        part = unrolled(
            "unroll_windows",
            model,
            x0,
            targets[start:stop],
            loss_fn=loss_fn,
            steps=None,
            feedback=feedback,
            # One input more than the window: the true first input of the next one.
            inputs=None if inputs is None else inputs[start : stop + 1],
            whole=whole,
            forcing=None if forcing is None else forcing[start:stop],
            state=state,
            grad=grad,
            teacher=teacher,
            delay=delay,
            weights=None if all_weights is None else all_weights[start:stop],
            strict=strict and start == 0,
        )
        x0, state = part.carry, map_tensors(torch.Tensor.detach, part.state)
        yield part
