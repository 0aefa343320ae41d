"""Training through feedback: unrolled losses where every step counts.

`unroll` runs a model on its own outputs like `rollout` and sums a loss over every step,
with the gradient's path through the fed-back outputs chosen explicitly:

- `grad="full"`: backpropagation through the whole rollout;
- `grad="detach"`: every fed-back input (and state) is detached, so each step's loss
  trains that step alone (the graph of every step still lives until `backward()`: for
  memory that stays flat, use `unroll_windows`);
- `grad=k`: the path is cut every k steps (truncated backpropagation through time).

The usual hand-written answer, `output.detach().requires_grad_(True)`, makes a new leaf
and silently cuts the gradient it claims to keep; here the choice is a named option.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from loopline._checks import check_int
from loopline._tree import map_tensors
from loopline.feedback._rollout_checks import (
    check_fed_back,
    concat_forcing,
    identity,
    split_output,
)
from loopline.feedback._unroll_checks import (
    check_arguments,
    check_target,
    check_weights,
    weighted_mean,
)
from loopline.feedback.protocols import Feedback, ForcedFeedback
from loopline.feedback.teacher import Teacher

Grad = Literal["full", "detach"] | int


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


def unroll(
    model: Callable[..., Any],
    x0: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int | None = None,
    feedback: Feedback | ForcedFeedback | None = None,
    forcing: torch.Tensor | None = None,
    state: Any = None,
    grad: Grad = "full",
    teacher: Teacher | None = None,
    delay: int = 1,
    weights: Sequence[float] | torch.Tensor | None = None,
    strict: bool = True,
) -> Unrolled:
    """Roll a model out on its own outputs and average a loss over every step.

    Step t calls `model(x_t)` (or `model(x_t, state)` returning `(y_t, new_state)`), and
    adds `loss_fn(y_t, targets[t])`. With `delay=d` the output of step t feeds step t+d;
    the first d inputs come from `x0` given as a history `[d, B, ...]`. A `teacher`
    (e.g. `scheduled_sampling(p)`) replaces, per sample, a fed-back output by the ground
    truth `targets[t - d]`.

    Args:
        model: the network being trained.
        x0: `[B, ...]` the first input, or `[d, B, ...]` the first d inputs with delay d.
        targets: `[T, B, ...]` what each step's output should be.
        loss_fn: `(y, target) -> scalar`, e.g. `nn.MSELoss()`.
        steps: steps to unroll, default `len(targets)`.
        feedback: `y -> x` (or `(y, forcing_t) -> x`) as in `rollout`.
        forcing: `[T, B, ...]` exogenous inputs, `feedback(y, forcing[t])`.
        state: the initial recurrent state.
        grad: "full", "detach" or an int k (truncate every k steps).
        teacher: chooses ground truth over fed-back outputs, per step and sample.
        delay: d >= 1, the output of step t feeds step t+d.
        weights: `[T]` weight of each step's loss (equal by default), >= 0, not all 0.
        strict: check at step 0 that a floating target has the output's shape (one that
            would only broadcast is an error); False for a loss whose target differs on
            purpose. Integer (class-index) targets are never compared.

    Returns:
        `Unrolled(loss, step_losses, outputs, state, carry)`.

    Raises:
        ValueError: targets shorter than steps or not shaped like the outputs, a
            non-scalar loss, a history shorter than the delay, weights that are negative
            or all zero, or shapes that cannot feed back.

    Example:
        >>> import torch, loopline
        >>> model = torch.nn.Linear(2, 2)
        >>> x0, targets = torch.ones(4, 2), torch.zeros(5, 4, 2)
        >>> out = loopline.unroll(model, x0, targets, loss_fn=torch.nn.MSELoss())
        >>> out.step_losses.shape, out.loss.shape
        (torch.Size([5]), torch.Size([]))
        >>> out.loss.backward()
    """
    check_weights("unroll", weights)
    return _unroll(
        "unroll", model, x0, targets, loss_fn=loss_fn, steps=steps, feedback=feedback,
        forcing=forcing, state=state, grad=grad, teacher=teacher, delay=delay,
        weights=weights, strict=strict,
    )  # fmt: skip


def _unroll(
    name: str,
    model: Callable[..., Any],
    x0: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int | None,
    feedback: Feedback | ForcedFeedback | None,
    forcing: torch.Tensor | None,
    state: Any,
    grad: Grad,
    teacher: Teacher | None,
    delay: int,
    weights: Sequence[float] | torch.Tensor | None,
    strict: bool,
) -> Unrolled:
    """`unroll`, its errors naming the function `name` the user called."""
    steps = check_arguments(name, targets, steps, grad, delay, x0, forcing)
    pending = list(x0) if delay > 1 else [x0]  # the inputs of the next `delay` steps
    default: Callable[..., torch.Tensor] = concat_forcing if forcing is not None else identity
    fed: Callable[..., torch.Tensor] = feedback or default
    draw = teacher.start() if teacher is not None else None
    outputs, losses = [], []
    truths = targets[:steps].unbind(0)  # one view per step, made once
    for t in range(steps):
        x = pending.pop(0)
        if t > 0 and _cut(grad, t):
            # The gradient path stops here: input and state become constants.
            x, state = x.detach(), map_tensors(torch.Tensor.detach, state)
        # y: [B, ...], the prediction for targets[t]
        y, state = split_output(
            model(x) if state is None else model(x, state), state is not None, t, name
        )
        if t == 0 and strict:
            check_target(name, y, truths[t], t)
        loss = loss_fn(y, truths[t])
        if t == 0 and loss.dim() != 0:
            raise ValueError(
                f"{name}: loss_fn returned a tensor of shape {tuple(loss.shape)} at step 0; it "
                "must return a scalar (e.g. a loss with reduction='mean')"
            )
        outputs.append(y)
        losses.append(loss)
        # The output fed d steps later: the model's own, or the truth where the teacher says.
        back = y if draw is None else draw(y, truths[t], t)
        nxt = fed(back) if forcing is None else fed(back, forcing[t])
        if t == 0:
            check_fed_back(nxt, x, name)
        pending.append(nxt)
    step_losses = torch.stack(losses)
    loss = weighted_mean(name, step_losses, weights, steps)
    carry = torch.stack(pending) if delay > 1 else pending[0]
    return Unrolled(loss, step_losses, torch.stack(outputs), state, carry.detach())


def unroll_windows(
    model: Callable[..., Any],
    x0: torch.Tensor,
    targets: torch.Tensor,
    *,
    window: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int | None = None,
    feedback: Feedback | ForcedFeedback | None = None,
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
    from the previous one's output and state (detached). Arguments are as for `unroll`;
    `weights` cover the whole horizon.

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
    total = check_arguments("unroll_windows", targets, steps, grad, delay, x0, forcing)
    check_weights("unroll_windows", weights)
    all_weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    for start in range(0, total, window):
        stop = min(start + window, total)
        part = _unroll(
            "unroll_windows",
            model,
            x0,
            targets[start:stop],
            loss_fn=loss_fn,
            steps=None,
            feedback=feedback,
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


def _cut(grad: Grad, t: int) -> bool:
    if grad == "full":
        return False
    return grad == "detach" or t % int(grad) == 0
