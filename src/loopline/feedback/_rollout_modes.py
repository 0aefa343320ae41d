"""How a rollout runs its model: the grad mode it picks, and the compiled (CUDA-graph) form.

Gradients are kept only when they are wanted, so an evaluation rollout never builds a graph
by accident, and a training rollout never loses one by accident.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from loopline._tree import map_tensors


def wants_grad(model: Any, x0: torch.Tensor) -> bool:
    """Grad mode on, and a model in training mode or an `x0` that requires grad."""
    return torch.is_grad_enabled() and (bool(getattr(model, "training", False)) or x0.requires_grad)


def grad_context(model: Any, x0: torch.Tensor) -> contextlib.AbstractContextManager[Any]:
    """enable_grad when gradients are wanted, else inference_mode."""
    return torch.enable_grad() if wants_grad(model, x0) else torch.inference_mode()


def compiled(model: Callable[..., Any]) -> Callable[..., Any]:
    """The model compiled for replay, returning outputs that later replays leave alone."""
    fast = torch.compile(model, mode="reduce-overhead")

    def step(*args: Any) -> Any:
        torch.compiler.cudagraph_mark_step_begin()
        return map_tensors(torch.Tensor.clone, fast(*args))

    return step
