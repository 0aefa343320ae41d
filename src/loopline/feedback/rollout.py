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
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch

from loopline.feedback._rollout_checks import (
    check_batch,
    check_fed_back,
    check_forcing,
    check_options,
    concat_forcing,
    first_nonfinite,
    freeze_state,
    identity,
    split_output,
)
from loopline.feedback._rollout_modes import compiled, grad_context, wants_grad
from loopline.feedback._rollout_store import Outputs
from loopline.feedback.protocols import Feedback, ForcedFeedback, StepCallback, StopCriterion
from loopline.feedback.trajectory import RolloutDiverged, Trajectory

OnNonfinite = Literal["raise", "stop", "ignore"]


class Rollout:
    """The lazy form of `rollout`: iterate it for `(t, y)`, one step at a time.

    Takes the same arguments as `rollout`. After iteration, `trajectory()` gives the same
    `Trajectory` that `rollout` would have returned (with `keep="all"`). Flags are read
    every `check_every` steps, so up to `check_every - 1` frozen steps may be yielded
    after every sample is done, and up to as many steps before `RolloutDiverged`.

    Example:
        >>> import torch, loopline
        >>> steps = loopline.Rollout(lambda x: x * 2, torch.ones(1, 1), 3)
        >>> [(t, y.item()) for t, y in steps]
        [(0, 2.0), (1, 4.0), (2, 8.0)]
        >>> steps.trajectory().outputs.flatten().tolist()
        [2.0, 4.0, 8.0]
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
        keep: Literal["all", "last"] = "all",
        callback: StepCallback | None = None,
        check_every: int = 16,
        compile: bool = False,
    ) -> None:
        check_options(steps, on_nonfinite, keep, check_every)
        check_forcing(forcing, steps, x0)
        self.model, self.x0, self.steps = model, x0, steps
        self._step_model = compiled(model) if compile else model
        default: Callable[..., torch.Tensor] = concat_forcing if forcing is not None else identity
        self.feedback: Callable[..., torch.Tensor] = feedback or default
        self.forcing, self.until, self.on_nonfinite = forcing, until, on_nonfinite
        self.keep, self.callback, self.check_every = keep, callback, check_every
        self.state = state
        batch = x0.shape[0]
        self.lengths = torch.zeros(batch, dtype=torch.int64, device=x0.device)
        self.diverged = torch.zeros(batch, dtype=torch.bool, device=x0.device)
        self.last: torch.Tensor | None = None

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        # Lazily, the grad mode is set per step, so the caller's code between steps runs
        # in its own mode.
        return self._steps(lambda: grad_context(self.model, self.x0))

    def run(self) -> Trajectory:
        """Run every step at once and return the `Trajectory`."""
        with grad_context(self.model, self.x0):
            null = contextlib.nullcontext()  # one, entered every step: run sets the mode once
            for _ in self._steps(lambda: null):
                pass
            return self.trajectory()

    def _steps(
        self, step_mode: Callable[[], contextlib.AbstractContextManager[Any]]
    ) -> Iterator[tuple[int, torch.Tensor]]:
        # Locals, not attributes, in the loop: the Python around a small model is the cost.
        call, feed, forcing, until = self._step_model, self.feedback, self.forcing, self.until
        plain = feed is identity and forcing is None  # the output is the next input as is
        callback, check_every, steps = self.callback, self.check_every, self.steps
        x, state, batch = self.x0, self.state, self.x0.shape[0]
        stateful, stop = state is not None, self.on_nonfinite == "stop"
        tracking = until is not None or stop
        frozen = torch.zeros(batch, dtype=torch.bool, device=x.device)
        kept = self.kept = Outputs(
            steps,
            keep_all=self.keep == "all",
            guard=self.on_nonfinite == "raise",
            preallocate=not tracking and not wants_grad(self.model, self.x0),
        )
        y: torch.Tensor | None = None
        collect, check_at, ran = kept.collecting, check_every - 1, 0
        for t in range(steps):
            ran = t + 1
            with step_mode():
                if y is not None:
                    # x: [B, ...], the previous output fed back (with forcing[t - 1])
                    x = y if plain else feed(y) if forcing is None else feed(y, forcing[t - 1])
                    if t == 1:
                        check_fed_back(x, self.x0)
                # y: [B, ...], the model's prediction from x
                out = call(x, state) if stateful else call(x)
                if t == 0:
                    y_t, new_state = split_output(out, stateful, t)
                    check_batch(y_t, batch)
                    kept.guard = kept.guard and y_t.is_floating_point()
                    stop = stop and y_t.is_floating_point()
                    collect = kept.collecting
                elif stateful:
                    y_t, new_state = out
                else:
                    y_t, new_state = out, None
                if tracking:
                    y_t, new_state, frozen = self._track(
                        t, x, y, y_t, state, new_state, frozen, stop
                    )
                state, y = new_state, y_t
                if collect:
                    kept.pending.append(y)
                if callback is not None:
                    callback(t, y)
            yield t, y
            if t == check_at or t + 1 == steps:
                check_at += check_every
                if kept.guard:
                    finite, recent = kept.finite()
                    if not finite:
                        self._locate(t, recent)  # raises, unless the sum merely overflowed
                if until is not None and bool(frozen.all()):
                    break
        if not tracking:
            self.lengths += ran
        self.state, self.last = state, y

    def _track(
        self,
        t: int,
        x: torch.Tensor,
        last: torch.Tensor | None,
        y: torch.Tensor,
        state: Any,
        new_state: Any,
        frozen: torch.Tensor,
        stop: bool,
    ) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """Freeze done and diverged samples at step t; returns (y, new_state, frozen)."""
        took = ~frozen  # samples still running at this step
        if last is not None:
            # Done samples repeat their last output; their state stops too.
            y = torch.where(_rows(frozen, y), last, y)
            new_state = freeze_state(frozen, state, new_state, y.shape[0])
        if stop:
            bad = ~torch.isfinite(y).flatten(1).all(1) & took
            if last is not None:
                y = torch.where(_rows(bad, y), last, y)
            self.diverged |= bad
            frozen = frozen | bad
            took = took & ~bad
        if self.until is not None:
            done = self.until(y, x)
            if t == 0:
                check_batch(done, y.shape[0], what="until(y, x)", bool_vector=True)
            frozen = frozen | done
        # A sample's length counts the steps it took, its last one included.
        self.lengths += took.long()
        return y, new_state, frozen

    def _locate(self, t: int, recent: torch.Tensor) -> None:
        found = first_nonfinite(recent)
        if found is None:
            return
        offset, samples = found
        step = t - len(recent) + 1 + offset
        raise RolloutDiverged(
            f"rollout diverged: non-finite output at step {step} in samples {samples} "
            "(pass on_nonfinite='stop' to freeze those samples and run the others on)",
            step,
            samples,
        )

    def trajectory(self) -> Trajectory:
        """The result, once iteration has ended."""
        if self.last is None:
            raise RuntimeError("Rollout.trajectory(): iterate the rollout first")
        return Trajectory(
            self.kept.stacked_outputs() if self.keep == "all" else None,
            self.last,
            self.lengths,
            self.diverged,
            self.state,
        )


def _rows(flags: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`[B]` flags shaped to broadcast over `like: [B, ...]`."""
    return flags.reshape(flags.shape + (1,) * (like.dim() - 1))


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
    keep: Literal["all", "last"] = "all",
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
        on_nonfinite: "raise" (`RolloutDiverged` naming step and samples), "stop"
            (freeze those samples, flag them in `diverged`, run the others on), "ignore".
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
