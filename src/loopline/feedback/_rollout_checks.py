"""Checks and small tensor helpers for rollouts, kept out of the loop's way.

The checks run at step 0 only (a shape that feeds the model once feeds it always), so
their cost does not grow with the horizon; each error says what was expected and found.
"""

from __future__ import annotations

from typing import Any

import torch

from loopline._checks import check_choice, check_int


def check_options(steps: int, on_nonfinite: str, keep: str, check_every: int) -> None:
    check_int("rollout", "steps", steps, 1)
    check_choice("rollout", "on_nonfinite", on_nonfinite, ("raise", "stop", "ignore"))
    check_choice("rollout", "keep", keep, ("all", "last"))
    check_int("rollout", "check_every", check_every, 1)


def check_forcing(forcing: torch.Tensor | None, steps: int, x0: torch.Tensor) -> None:
    if not isinstance(x0, torch.Tensor) or x0.dim() == 0:
        raise ValueError(f"rollout: x0 must be a batch tensor [B, ...], got {_describe(x0)}")
    if forcing is None:
        return
    if forcing.dim() < 2 or forcing.shape[1] != x0.shape[0]:
        raise ValueError(
            f"rollout: forcing must be [T, B, ...] with B={x0.shape[0]} like x0, got "
            f"{tuple(forcing.shape)}"
        )
    if forcing.shape[0] < steps:
        raise ValueError(
            f"rollout: forcing has {forcing.shape[0]} steps but steps={steps}; a short "
            "forcing is never padded, so pass at least as many steps as the rollout runs"
        )


def split_output(
    output: Any, stateful: bool, step: int, name: str = "rollout"
) -> tuple[torch.Tensor, Any]:
    """`(y, new_state)` from what the model returned (errors name the function `name`)."""
    if stateful:
        if not (isinstance(output, tuple) and len(output) == 2):
            raise ValueError(
                f"{name}: with state, the model must return (y, new_state) like nn.LSTM, "
                f"got {_describe(output)} at step {step}"
            )
        y, new_state = output
    else:
        if isinstance(output, tuple):
            raise ValueError(
                f"{name}: the model returned a tuple of {len(output)} at step {step} (like "
                "nn.LSTM's (output, (h, c))); pass state=... to thread the state through "
                "the rollout, or wrap the model to return one tensor"
            )
        y, new_state = output, None
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"{name}: the model's output must be a tensor, got {_describe(y)}")
    return y, new_state


def check_batch(
    value: Any, batch: int, *, what: str = "the model's output", bool_vector: bool = False
) -> None:
    if bool_vector:
        if not (
            isinstance(value, torch.Tensor)
            and value.dtype == torch.bool
            and tuple(value.shape) == (batch,)
        ):
            raise ValueError(
                f"rollout: {what} must be a bool tensor of shape ({batch},), got "
                f"{_describe(value)} at step 0"
            )
        return
    if value.dim() == 0 or value.shape[0] != batch:
        raise ValueError(
            f"rollout: {what} at step 0 is {tuple(value.shape)}, but x0 has batch size "
            f"{batch}; the first dimension must stay the batch"
        )


FROM_DATA = (
    "to take step t's input from the data instead (a language model's next tokens), pass "
    "them as inputs=[T, B, ...]"
)
TO_INPUT = (
    "pass a feedback= that makes an input of an output (feedback=lambda logits: "
    "logits.argmax(-1) for tokens)"
)


def check_fed_back(
    fed: Any, took: torch.Tensor, name: str = "rollout", hint: str = FROM_DATA
) -> None:
    """The input made from step 0's output must look like the input the model took."""
    if not isinstance(fed, torch.Tensor):
        raise ValueError(f"{name}: feedback must return a tensor, got {_describe(fed)}")
    if fed.shape != took.shape or fed.dtype != took.dtype:
        raise ValueError(
            f"{name}: feedback produced {tuple(fed.shape)} {_dtype(fed)} but the model took "
            f"{tuple(took.shape)} {_dtype(took)} at step 0; {hint}"
        )


def identity(y: torch.Tensor) -> torch.Tensor:
    """The default feedback: the output is the next input."""
    return y


def concat_forcing(y: torch.Tensor, forcing: torch.Tensor) -> torch.Tensor:
    """The default feedback with forcing: output and exogenous input side by side."""
    return torch.cat([y, forcing], dim=-1)


def _dtype(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor {tuple(value.shape)} {_dtype(value)}"
    return type(value).__name__
