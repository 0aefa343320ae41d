"""Feedback rollouts: a model's output becomes its next input, batched, per sample.

`rollout(model, x0, steps)` runs `y_t = model(x_t)`, `x_{t+1} = feedback(y_t)` from a
batch `x0: [B, ...]`, threading recurrent state when given. Every sample is its own
trajectory: a sample that meets `until` or goes non-finite is frozen (its later outputs
repeat its last one) while the others run on.

Host synchronisation: done flags live on the device, and the loop reads them, and one
sum over the outputs since the last read (non-finite as soon as any element was), only
every `check_every` steps; only when that sum fires are the kept outputs searched for the
exact step and samples. So on a GPU the loop runs at the model's pace, and errors still
name the first bad step.

A `Rollout` holds only its settings; each iteration is a `Run` (`_run.py`) of its own, from `x0` and
the initial `state`, so iterating twice runs twice. The loop is the model call and the
feedback; freezing (`_freeze`) and the non-finite guard (`_nonfinite`) are steps beside it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from loopline.feedback._rollout_checks import check_forcing, check_options, concat_forcing, identity
from loopline.feedback._rollout_modes import compiled, grad_context, wants_grad
from loopline.feedback._run import Keep, OnNonfinite, Run
from loopline.feedback.protocols import Feedback, ForcedFeedback, StepCallback, StopCriterion
from loopline.feedback.trajectory import Trajectory


class Rollout:
    """The lazy form of `rollout`: iterate it for `(t, y)`, one step at a time.

    Takes the same arguments as `rollout`, and keeps only them: each iteration is a fresh
    run from `x0` and `state`. Once one has ended, `trajectory()` gives the `Trajectory`
    that `rollout` would have returned (with `keep="all"`), of the latest run. Flags are
    read every `check_every` steps, so up to `check_every - 1` frozen steps may be yielded
    after every sample is done, and up to as many steps before `RolloutDiverged`.

    Example:
        >>> import torch, loopline
        >>> steps = loopline.Rollout(lambda x: x * 2, torch.ones(1, 1), 3)
        >>> [(t, y.item()) for t, y in steps]
        [(0, 2.0), (1, 4.0), (2, 8.0)]
        >>> [y.item() for _, y in steps]  # again from x0
        [2.0, 4.0, 8.0]
        >>> steps.trajectory().outputs.flatten().tolist(), steps.trajectory().lengths.tolist()
        ([2.0, 4.0, 8.0], [3])
    """

    def __init__(
        self,
        model: Callable[..., Any],
        x0: torch.Tensor,
        steps: int,
        *,
        feedback: Feedback | ForcedFeedback | None = None,
        forcing: torch.Tensor | None = None,
        state: Any = None,
        until: StopCriterion | None = None,
        on_nonfinite: OnNonfinite = "raise",
        keep: Keep = "all",
        callback: StepCallback | None = None,
        check_every: int = 16,
        compile: bool = False,
    ) -> None:
        check_options(steps, on_nonfinite, keep, check_every)
        check_forcing(forcing, steps, x0)
        self.model, self.x0, self.steps, self.state = model, x0, steps, state
        self._step_model = compiled(model) if compile else model
        default: Callable[..., torch.Tensor] = concat_forcing if forcing is not None else identity
        self.feedback: Callable[..., torch.Tensor] = feedback or default
        self.forcing, self.until, self.on_nonfinite = forcing, until, on_nonfinite
        self.keep, self.callback, self.check_every = keep, callback, check_every
        self._latest: Run | None = None  # the last run that ended

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        run = Run(self)
        # The grad mode is set per step, so the caller's code between steps runs in its own.
        yield from run.steps(self, lambda: grad_context(self.model, self.x0))
        self._latest = run

    def run(self) -> Trajectory:
        """Run every step at once and return the `Trajectory`."""
        run = Run(self)  # before the grad mode is set: lengths and diverged stay plain
        # Nobody sees the steps, and no graph is built: the run may speculate (see Run.steps).
        speculate = self.callback is None and not wants_grad(self.model, self.x0)
        with grad_context(self.model, self.x0):
            null = contextlib.nullcontext()  # one, entered every step: run sets the mode once
            for _ in run.steps(self, lambda: null, speculate=speculate):
                pass
            self._latest = run
            return run.trajectory()

    def trajectory(self) -> Trajectory:
        """The result of the latest run, once it has ended."""
        if self._latest is None:
            raise RuntimeError("Rollout.trajectory(): iterate the rollout first (to its end)")
        return self._latest.trajectory()


def rollout(
    model: Callable[..., Any],
    x0: torch.Tensor,
    steps: int,
    *,
    feedback: Feedback | ForcedFeedback | None = None,
    forcing: torch.Tensor | None = None,
    state: Any = None,
    until: StopCriterion | None = None,
    on_nonfinite: OnNonfinite = "raise",
    keep: Keep = "all",
    callback: StepCallback | None = None,
    check_every: int = 16,
    compile: bool = False,
) -> Trajectory:
    """Feed a model's output back as its next input, for `steps` steps or until done.

    Step t (counting from 0) calls `model(x)`, or `model(x, state)` returning
    `(y, new_state)` when `state` is given (the `nn.LSTM`/`nn.GRU` convention; a state is
    a tensor or a tuple of tensors). The next input is `feedback(y)`, or
    `feedback(y, forcing[t])` with exogenous `forcing: [T, B, ...]` (default: `y`, or
    `y` and `forcing[t]` concatenated on the last dimension). Runs under
    `torch.inference_mode()` unless gradients are wanted (grad mode on, and the model in
    training mode or `x0` requiring grad), in which case the graph is kept.

    Args:
        model: the network (or any callable).
        x0: `[B, ...]` the first inputs; each sample is its own trajectory.
        steps: the most steps to run.
        feedback: `y -> x` (or `(y, forcing_t) -> x`), the output turned into the input.
        forcing: `[T, B, ...]` exogenous inputs, at least `steps` long (never padded).
        state: the initial recurrent state.
        until: `(y, x) -> BoolTensor[B]`, true for samples that are done (frozen).
            Until one is, the hold of done samples is skipped; the `check_every` steps in
            which the first finishes are then run again, holding (with no callback and no
            gradient: up to `check_every` more model calls, the same result).
        on_nonfinite: "raise" (`RolloutDiverged` naming step and samples), "stop"
            (freeze those samples, flag them in `diverged`, run the others on), "ignore".
            A stopped sample keeps its last finite output and the state that came with
            it; one non-finite at step 0 stays at its input x0 (zeros when outputs are
            not shaped like inputs) with length 0: no NaN reaches the outputs.
        keep: "all" outputs, or only the "last" (memory stays flat for long horizons).
        callback: `callback(t, y)` after every step.
        check_every: steps between reads of the device flags (done, non-finite).
        compile: run the model through `torch.compile(mode="reduce-overhead")`, which
            replays it as a CUDA graph on a GPU (outputs are cloned, since a replay
            overwrites the previous one's). Compiling takes seconds: worth it for long
            rollouts of small models.

    Returns:
        A `Trajectory` (outputs `[T, B, ...]`, last, lengths, diverged, state).

    Raises:
        RolloutDiverged: a non-finite output with `on_nonfinite="raise"`.
        ValueError: shapes that cannot feed the model, a short forcing, bad options.

    Example:
        >>> import torch, loopline
        >>> halve = lambda x: x / 2
        >>> trajectory = loopline.rollout(halve, torch.tensor([[8.0], [4.0]]), 3)
        >>> trajectory.outputs[:, :, 0].tolist()
        [[4.0, 2.0], [2.0, 1.0], [1.0, 0.5]]
    """
    return Rollout(
        model,
        x0,
        steps,
        feedback=feedback,
        forcing=forcing,
        state=state,
        until=until,
        on_nonfinite=on_nonfinite,
        keep=keep,
        callback=callback,
        check_every=check_every,
        compile=compile,
    ).run()
