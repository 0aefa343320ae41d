"""What `unroll`, `unroll_windows` and `pushforward` check before they train on anything.

A target that only broadcasts against the output (`[T, B, 1]`, `[T, 1, D]` or `[T, D]` for
outputs `[T, B, D]`) trains silently on the wrong thing: `mse_loss` only warns, a
hand-written loss says nothing, and a teacher feeds the broadcast truth back. So at step 0
a floating target must have the output's shape. Class-index targets (integers, as for
cross-entropy) differ from the logits by design and are not compared; `strict=False`
turns the check off for any other loss whose target differs on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from loopline._checks import check_int, is_int

Grad = str | int


def check_arguments(
    name: str,
    targets: torch.Tensor,
    steps: int | None,
    grad: Grad,
    delay: int,
    x0: torch.Tensor,
    forcing: torch.Tensor | None,
) -> int:
    """The number of steps to unroll, or an error naming the argument of `name`."""
    steps = check_int(name, "steps", len(targets) if steps is None else steps, 1)
    if len(targets) < steps:
        raise ValueError(f"{name}: targets has {len(targets)} steps but steps={steps}")
    if not (grad in ("full", "detach") or (is_int(grad) and int(grad) >= 1)):
        raise ValueError(f"{name}: grad must be 'full', 'detach' or an int >= 1, got {grad!r}")
    check_int(name, "delay", delay, 1)
    if delay > 1 and len(x0) != delay:
        raise ValueError(
            f"{name}: with delay={delay}, x0 must be a history [{delay}, B, ...] of the first "
            f"{delay} inputs, got {tuple(x0.shape)}"
        )
    if forcing is not None and len(forcing) < steps:
        raise ValueError(f"{name}: forcing has {len(forcing)} steps but steps={steps}")
    return steps


def check_target(name: str, output: torch.Tensor, target: torch.Tensor, step: int) -> None:
    """Raise unless a floating `target` has the shape of the `output` it is compared with."""
    if not target.is_floating_point() or target.shape == output.shape:
        return
    try:
        torch.broadcast_shapes(target.shape, output.shape)
        how = "it would only broadcast against it"
    except RuntimeError:
        how = "they do not match"
    raise ValueError(
        f"{name}: at step {step} the target has shape {tuple(target.shape)} but the model's "
        f"output has shape {tuple(output.shape)}; {how}, so the loss would compare other "
        "elements than meant (targets are [T, B, ...] like the outputs, time first); pass "
        "strict=False if your loss takes a target of another shape on purpose"
    )


def weighted_mean(
    name: str,
    step_losses: torch.Tensor,
    weights: Sequence[float] | torch.Tensor | None,
    steps: int,
) -> torch.Tensor:
    """The mean of the step losses, weighted by `weights` (equal by default)."""
    if weights is None:
        return step_losses.mean()
    w = torch.as_tensor(weights, dtype=step_losses.dtype, device=step_losses.device)
    if w.shape != (steps,):
        raise ValueError(f"{name}: weights must have shape ({steps},), got {tuple(w.shape)}")
    # A window of unroll_windows may hold only zero weights: its loss is then 0, not NaN.
    return (w * step_losses).sum() / w.sum().clamp_min(torch.finfo(w.dtype).tiny)


def check_weights(name: str, weights: Sequence[float] | torch.Tensor | None) -> None:
    """Raise unless every weight is >= 0 and some is > 0 (read once, before the run; a
    tensor on an accelerator is not read, which would wait for the device)."""
    if weights is None or (isinstance(weights, torch.Tensor) and weights.device.type != "cpu"):
        return
    w = torch.as_tensor(weights, dtype=torch.float64).cpu()
    if bool((w < 0).any()) or not bool((w > 0).any()) or not bool(torch.isfinite(w).all()):
        raise ValueError(
            f"{name}: weights must be finite and >= 0 with at least one > 0 (else the loss "
            f"is 0/0 = NaN or rewards error), got {w.tolist()}"
        )


def check_inputs(
    name: str,
    x0: torch.Tensor | None,
    inputs: torch.Tensor | None,
    targets: torch.Tensor,
    steps: int | None,
    forcing: torch.Tensor | None,
    delay: int,
    teacher: object,
    whole: bool,
    grad: Grad,
) -> torch.Tensor:
    """The first input (`x0`, or `inputs[0]`), or an error naming what does not fit."""
    if inputs is None:
        if whole:
            raise ValueError(f"{name}: whole=True calls the model on the true inputs; pass inputs")
        if x0 is None:
            raise ValueError(f"{name}: x0 is None; pass the first input, or inputs=[T, B, ...]")
        return x0
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"{name}: inputs must be a tensor [T, B, ...], got {type(inputs).__name__}")
    clash = [what for what, bad in (("forcing", forcing is not None), ("delay", delay != 1)) if bad]
    if clash:
        raise ValueError(
            f"{name}: inputs= gives every step's input from the data, which {clash[0]}= "
            "cannot add to; pass one or the other"
        )
    needed = len(targets) if steps is None else steps
    if len(inputs) < needed:
        raise ValueError(f"{name}: inputs has {len(inputs)} steps but {needed} are unrolled")
    if whole and teacher is not None:
        raise ValueError(
            f"{name}: whole=True calls the model once on the true inputs, so there is no "
            "prediction for a teacher to choose; drop teacher= or whole=True"
        )
    if whole and grad != "full":
        raise ValueError(
            f"{name}: whole=True makes one model call, which cannot be cut inside; use "
            "grad='full' and unroll_windows for truncation between windows"
        )
    return inputs[0] if x0 is None else x0
