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

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

from loopline._tree import map_tensors
from loopline.feedback._rollout_checks import (
    TO_INPUT,
    check_fed_back,
    concat_forcing,
    identity,
    split_output,
)
from loopline.feedback._unroll_checks import (
    check_arguments,
    check_inputs,
    check_target,
    check_weights,
    weighted_mean,
)
from loopline.feedback._whole import whole_window
from loopline.feedback.protocols import Feedback, ForcedFeedback
from loopline.feedback.teacher import Teacher
from loopline.feedback.unrolled import Unrolled

Grad = Literal["full", "detach"] | int


def unroll(
    model: Callable[..., Any],
    x0: torch.Tensor | None,
    targets: torch.Tensor,
    *,
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
) -> Unrolled:
    """Roll a model out on its own outputs and average a loss over every step.

    Step t calls `model(x_t)` (or `model(x_t, state)` returning `(y_t, new_state)`), and
    adds `loss_fn(y_t, targets[t])`. With `delay=d` the output of step t feeds step t+d;
    the first d inputs come from `x0` given as a history `[d, B, ...]`. A `teacher`
    (e.g. `scheduled_sampling(p)`) replaces, per sample, a fed-back output by the ground
    truth `targets[t - d]`.

    With `inputs` (the true input of every step, `[T, B, ...]`: a language model's tokens),
    step t+1 takes `inputs[t + 1]` (teacher forcing), or with a `teacher`, per sample,
    either that or `feedback(y_t)`, the prediction made an input (`argmax` for tokens):
    scheduled sampling for token and regression models alike. `whole=True` (teacher
    forcing, no teacher) calls the model once on the whole `[T, B, ...]` (a fused
    `nn.LSTM` or a causal transformer), with the same losses.

    Args:
        model: the network being trained.
        x0: `[B, ...]` the first input, or `[d, B, ...]` the first d inputs with delay d
            (None with `inputs`: `inputs[0]`).
        targets: `[T, B, ...]` what each step's output should be.
        loss_fn: `(y, target) -> scalar`, e.g. `nn.MSELoss()`.
        steps: steps to unroll, default `len(targets)`.
        feedback: `y -> x` (or `(y, forcing_t) -> x`) as in `rollout`.
        inputs: `[T, B, ...]` (or `[T + 1, B, ...]`, for the carry) the true inputs.
        whole: with `inputs` and no teacher, one model call on all T inputs.
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
    return unrolled(
        "unroll", model, x0, targets, loss_fn=loss_fn, steps=steps, feedback=feedback,
        inputs=inputs, whole=whole, forcing=forcing, state=state, grad=grad, teacher=teacher,
        delay=delay, weights=weights, strict=strict,
    )  # fmt: skip


def unrolled(
    name: str,
    model: Callable[..., Any],
    x0: torch.Tensor | None,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int | None,
    feedback: Feedback | ForcedFeedback | None,
    inputs: torch.Tensor | None,
    whole: bool,
    forcing: torch.Tensor | None,
    state: Any,
    grad: Grad,
    teacher: Teacher | None,
    delay: int,
    weights: Sequence[float] | torch.Tensor | None,
    strict: bool,
) -> Unrolled:
    """`unroll`, its errors naming the function `name` the user called."""
    x0 = check_inputs(name, x0, inputs, targets, steps, forcing, delay, teacher, whole, grad)
    steps = check_arguments(name, targets, steps, grad, delay, x0, forcing)
    if whole:
        assert inputs is not None
        fed_back: Callable[..., torch.Tensor] = feedback or identity
        return whole_window(
            name, model, inputs, targets, steps, loss_fn, state, weights, strict, fed_back
        )
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
        if inputs is not None:
            # The next input: the true one, or the prediction where the teacher says (the
            # prediction is made an input only where it may be fed).
            if draw is None and t + 1 < len(inputs):
                pending.append(inputs[t + 1])
                continue
            nxt = fed(y)
            if t == 0:
                check_fed_back(nxt, x, name, TO_INPUT)
            if t + 1 < len(inputs) and draw is not None:
                nxt = draw(nxt, inputs[t + 1], t)
            pending.append(nxt)
            continue
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


def _cut(grad: Grad, t: int) -> bool:
    if grad == "full":
        return False
    return grad == "detach" or t % int(grad) == 0
