"""The pushforward trick (Brandstetter et al., 2022): learn from inputs your own errors moved.

`pushforward` runs the model k steps without gradient, feeding its outputs back, then
one step with gradient against the target k steps ahead: the network sees the kind of
input it will meet in a rollout, at the price of a single differentiable step. k is
drawn per call from [0, max_unroll] by a `PushforwardSteps` (its own seeded generator,
never the global RNG, with a state for the checkpoint), or given as an int, so that a
caller can draw k first and build only the target it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from loopline._checks import check_int, is_int
from loopline.feedback._rollout_checks import check_fed_back, identity, split_output
from loopline.feedback._unroll_checks import check_target
from loopline.feedback.protocols import Feedback
from loopline.feedback.unrolled import Unrolled

GENERATOR = "generator"  # the key of PushforwardSteps' state


class PushforwardSteps:
    """Draws pushforward's k uniformly from [0, max_unroll] with its own seeded generator.

    Args:
        max_unroll: the largest k.
        seed: the generator's seed.

    Example:
        >>> import loopline
        >>> draw = loopline.PushforwardSteps(3, seed=0)
        >>> state = draw.state_dict()
        >>> ks = [draw() for _ in range(5)]
        >>> draw.load_state_dict(state)
        >>> [draw() for _ in range(5)] == ks and all(0 <= k <= 3 for k in ks)
        True
    """

    def __init__(self, max_unroll: int, *, seed: int = 0) -> None:
        self.max_unroll = check_int("PushforwardSteps", "max_unroll", max_unroll, 0)
        self._generator = torch.Generator().manual_seed(check_int("PushforwardSteps", "seed", seed))

    def __call__(self) -> int:
        return int(torch.randint(0, self.max_unroll + 1, (), generator=self._generator))

    def state_dict(self) -> dict[str, Any]:
        return {GENERATOR: self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._generator.set_state(state[GENERATOR])


def pushforward(
    model: Callable[..., Any],
    x0: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    k: int | Callable[[], int] | None = None,
    max_unroll: int | None = None,
    generator: torch.Generator | None = None,
    feedback: Feedback | None = None,
    strict: bool = True,
) -> Unrolled:
    """k steps without gradient from `x0`, then one step with gradient against `targets[k]`.

    Args:
        model: `x -> y`, the network being trained.
        x0: `[B, ...]` the first input.
        targets: `[T, B, ...]` what step t's output should be (only `targets[k]` is used).
        loss_fn: `(y, target) -> scalar`.
        k: the steps without gradient: an int, or a callable that draws one (e.g.
            `PushforwardSteps(max_unroll, seed=...)`, checkpointable); if None, k is
            drawn from [0, max_unroll] with `generator`, which must then be given.
        max_unroll: the largest k when it is drawn with `generator`.
        generator: a seeded `torch.Generator` (never the global RNG, which would shift
            the caller's other draws, DataLoader shuffling included).
        feedback: `y -> x`, as in `rollout` (the output itself by default).
        strict: check at step 0 that a floating target has the output's shape.

    Returns:
        `Unrolled` with the one step's loss, output and the `k` it used.

    Raises:
        ValueError: no way to get k, k outside [0, len(targets) - 1], or outputs that
            cannot feed back or do not match the targets (at step 0, whatever k is).

    Example:
        >>> import torch, loopline
        >>> model = torch.nn.Linear(2, 2)
        >>> draw = loopline.PushforwardSteps(2, seed=0)
        >>> out = loopline.pushforward(model, torch.ones(4, 2), torch.zeros(3, 4, 2),
        ...                            loss_fn=torch.nn.MSELoss(), k=draw)
        >>> out.step_losses.shape, 0 <= out.k <= 2
        (torch.Size([1]), True)
    """
    steps = _steps(k, max_unroll, generator, len(targets))
    fed = feedback or identity
    x = x0
    with torch.no_grad():
        for step in range(steps):
            y, _ = split_output(model(x), False, step, "pushforward")
            if step == 0:
                _check_step(fed(y), x0, y, targets[0], strict)
            x = fed(y)
    y, _ = split_output(model(x), False, steps, "pushforward")
    back = fed(y)
    if steps == 0:  # the checks of step 0 for k = 0 too, so they never depend on k
        _check_step(back, x0, y, targets[0], strict)
    loss = loss_fn(y, targets[steps])
    return Unrolled(loss, loss[None], y[None], None, back.detach(), steps)


def _check_step(
    back: torch.Tensor, x0: torch.Tensor, y: torch.Tensor, target: torch.Tensor, strict: bool
) -> None:
    check_fed_back(back, x0, "pushforward")
    if strict:
        check_target("pushforward", y, target, 0)


def _steps(
    k: int | Callable[[], int] | None,
    max_unroll: int | None,
    generator: torch.Generator | None,
    available: int,
) -> int:
    """This call's k, checked against the `available` targets."""
    if k is None:
        if max_unroll is None or generator is None:
            raise ValueError(
                "pushforward: pass k=... (an int, or loopline.PushforwardSteps(max_unroll, "
                "seed=...) to draw it) or both max_unroll= and generator=torch.Generator()"
                ".manual_seed(...); drawing k from the global RNG would shift the caller's "
                "other random draws"
            )
        check_int("pushforward", "max_unroll", max_unroll, 0)
        if available < max_unroll + 1:
            raise ValueError(
                f"pushforward: targets has {available} steps but max_unroll={max_unroll} "
                f"needs {max_unroll + 1}"
            )
        k = int(torch.randint(0, max_unroll + 1, (), generator=generator))
    elif callable(k):
        largest: Any = getattr(k, "max_unroll", None)  # a PushforwardSteps: check first
        if is_int(largest) and available < largest + 1:
            raise ValueError(
                f"pushforward: targets has {available} steps but k may be drawn up to "
                f"{largest} (max_unroll), which needs {largest + 1}"
            )
        k = k()
    if not is_int(k) or not 0 <= k < available:
        raise ValueError(
            f"pushforward: k must be an int in [0, {available - 1}] (targets has {available} "
            f"steps), got {k!r}"
        )
    return int(k)
