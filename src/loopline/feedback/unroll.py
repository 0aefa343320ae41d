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

from loopline._checks import check_int, is_int
from loopline._tree import map_tensors
from loopline.feedback._rollout_checks import (
    check_fed_back,
    concat_forcing,
    identity,
    split_output,
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
        weights: `[T]` weight of each step's loss (equal by default).

    Returns:
        `Unrolled(loss, step_losses, outputs, state, carry)`.

    Raises:
        ValueError: targets shorter than steps, a non-scalar loss, a teacher without
            targets, a history shorter than the delay, or shapes that cannot feed back.

    Example:
        >>> import torch, loopline
        >>> model = torch.nn.Linear(2, 2)
        >>> x0, targets = torch.ones(4, 2), torch.zeros(5, 4, 2)
        >>> out = loopline.unroll(model, x0, targets, loss_fn=torch.nn.MSELoss())
        >>> out.step_losses.shape, out.loss.shape
        (torch.Size([5]), torch.Size([]))
        >>> out.loss.backward()
    """
    steps = _check(targets, steps, grad, delay, x0, forcing)
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
            model(x) if state is None else model(x, state), state is not None, t
        )
        loss = loss_fn(y, truths[t])
        if t == 0 and loss.dim() != 0:
            raise ValueError(
                f"unroll: loss_fn returned a tensor of shape {tuple(loss.shape)} at step 0; it "
                "must return a scalar (e.g. a loss with reduction='mean')"
            )
        outputs.append(y)
        losses.append(loss)
        # The output fed d steps later: the model's own, or the truth where the teacher says.
        back = y if draw is None else draw(y, truths[t], t)
        nxt = fed(back) if forcing is None else fed(back, forcing[t])
        if t == 0:
            check_fed_back(nxt, x)
        pending.append(nxt)
    step_losses = torch.stack(losses)
    loss = _weighted_mean(step_losses, weights, steps)
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
    total = _check(targets, steps, grad, delay, x0, forcing)
    all_weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    for start in range(0, total, window):
        stop = min(start + window, total)
        part = unroll(
            model,
            x0,
            targets[start:stop],
            loss_fn=loss_fn,
            feedback=feedback,
            forcing=None if forcing is None else forcing[start:stop],
            state=state,
            grad=grad,
            teacher=teacher,
            delay=delay,
            weights=None if all_weights is None else all_weights[start:stop],
        )
        x0, state = part.carry, map_tensors(torch.Tensor.detach, part.state)
        yield part


def pushforward(
    model: Callable[..., Any],
    x0: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    max_unroll: int,
    feedback: Feedback | None = None,
    generator: torch.Generator | None = None,
) -> Unrolled:
    """The pushforward trick (Brandstetter et al., 2022): k steps without gradient, k drawn
    from [0, max_unroll], then one step with gradient against `targets[k]`.

    The model learns from inputs its own errors have shifted, at the cost of one
    differentiable step. `targets` needs at least `max_unroll + 1` steps.

    Example:
        >>> import torch, loopline
        >>> model = torch.nn.Linear(2, 2)
        >>> out = loopline.pushforward(model, torch.ones(4, 2), torch.zeros(3, 4, 2),
        ...                            loss_fn=torch.nn.MSELoss(), max_unroll=2)
        >>> out.step_losses.shape
        torch.Size([1])
    """
    check_int("pushforward", "max_unroll", max_unroll, 0)
    if len(targets) < max_unroll + 1:
        raise ValueError(
            f"pushforward: targets has {len(targets)} steps but max_unroll={max_unroll} "
            f"needs {max_unroll + 1}"
        )
    fed = feedback or identity
    k = int(torch.randint(0, max_unroll + 1, (), generator=generator))
    x = x0
    with torch.no_grad():
        for _ in range(k):
            x = fed(model(x))
    y = model(x)
    loss = loss_fn(y, targets[k])
    return Unrolled(loss, loss[None], y[None], None, fed(y).detach())


def _check(
    targets: torch.Tensor,
    steps: int | None,
    grad: Grad,
    delay: int,
    x0: torch.Tensor,
    forcing: torch.Tensor | None,
) -> int:
    steps = check_int("unroll", "steps", len(targets) if steps is None else steps, 1)
    if len(targets) < steps:
        raise ValueError(f"unroll: targets has {len(targets)} steps but steps={steps}")
    if not (grad in ("full", "detach") or (is_int(grad) and int(grad) >= 1)):
        raise ValueError(f"unroll: grad must be 'full', 'detach' or an int >= 1, got {grad!r}")
    check_int("unroll", "delay", delay, 1)
    if delay > 1 and len(x0) != delay:
        raise ValueError(
            f"unroll: with delay={delay}, x0 must be a history [{delay}, B, ...] of the first "
            f"{delay} inputs, got {tuple(x0.shape)}"
        )
    if forcing is not None and len(forcing) < steps:
        raise ValueError(f"unroll: forcing has {len(forcing)} steps but steps={steps}")
    return steps


def _cut(grad: Grad, t: int) -> bool:
    if grad == "full":
        return False
    return grad == "detach" or t % int(grad) == 0


def _weighted_mean(
    step_losses: torch.Tensor, weights: Sequence[float] | torch.Tensor | None, steps: int
) -> torch.Tensor:
    if weights is None:
        return step_losses.mean()
    w = torch.as_tensor(weights, dtype=step_losses.dtype, device=step_losses.device)
    if w.shape != (steps,):
        raise ValueError(f"unroll: weights must have shape ({steps},), got {tuple(w.shape)}")
    return (w * step_losses).sum() / w.sum()
