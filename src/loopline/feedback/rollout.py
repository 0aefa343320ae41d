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

A `Rollout` holds only its settings; each iteration is a `_Run` of its own, from `x0` and
the initial `state`, so iterating twice runs twice. The loop is the model call and the
feedback; freezing (`_freeze`) and the non-finite guard (`_nonfinite`) are steps beside it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch

from loopline.feedback._freeze import Freeze
from loopline.feedback._nonfinite import check_finite
from loopline.feedback._rollout_checks import (
    check_batch,
    check_fed_back,
    check_forcing,
    check_options,
    concat_forcing,
    identity,
    split_output,
)
from loopline.feedback._rollout_modes import compiled, grad_context, wants_grad
from loopline.feedback._rollout_store import Outputs
from loopline.feedback.protocols import Feedback, ForcedFeedback, StepCallback, StopCriterion
from loopline.feedback.trajectory import Trajectory

OnNonfinite = Literal["raise", "stop", "ignore"]


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
        keep: Literal["all", "last"] = "all",
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
        self._latest: _Run | None = None  # the last run that ended

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        run = _Run(self)
        # The grad mode is set per step, so the caller's code between steps runs in its own.
        yield from run.steps(self, lambda: grad_context(self.model, self.x0))
        self._latest = run

    def run(self) -> Trajectory:
        """Run every step at once and return the `Trajectory`."""
        run = _Run(self)  # before the grad mode is set: lengths and diverged stay plain
        with grad_context(self.model, self.x0):
            null = contextlib.nullcontext()  # one, entered every step: run sets the mode once
            for _ in run.steps(self, lambda: null):
                pass
            self._latest = run
            return run.trajectory()

    def trajectory(self) -> Trajectory:
        """The result of the latest run, once it has ended."""
        if self._latest is None:
            raise RuntimeError("Rollout.trajectory(): iterate the rollout first (to its end)")
        return self._latest.trajectory()


class _Run:
    """One run of a `Rollout`, made afresh for each iteration: all the state of a run.

    It holds no reference to its `Rollout`, which holds the latest run: a cycle would keep
    the outputs alive until the garbage collector found it.
    """

    def __init__(self, settings: Rollout) -> None:
        x0, self.keep_all = settings.x0, settings.keep == "all"
        batch, stop = x0.shape[0], settings.on_nonfinite == "stop"
        self.freeze: Freeze | None = None
        if settings.until is not None or stop:
            self.freeze = Freeze(
                settings.until,
                stop=stop,
                stateful=settings.state is not None,
                batch=batch,
                device=x0.device,
                window=min(settings.check_every, settings.steps),  # steps between checks
            )
            self.lengths, self.diverged = self.freeze.lengths, self.freeze.diverged
        else:  # every sample runs every step
            self.lengths = torch.zeros(batch, dtype=torch.int64, device=x0.device)
            self.diverged = torch.zeros(batch, dtype=torch.bool, device=x0.device)
        self.kept = Outputs(
            settings.steps,
            keep_all=self.keep_all,
            guard=settings.on_nonfinite == "raise",
            # Only a run sure to take every step writes into one [steps, B, ...] tensor.
            preallocate=self.freeze is None and not wants_grad(settings.model, x0),
        )
        self.state: Any = settings.state
        self.last: torch.Tensor | None = None

    def steps(
        self, s: Rollout, step_mode: Callable[[], contextlib.AbstractContextManager[Any]]
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield `(t, y)` for every step of `s`; the run's result is complete once it ends."""
        # Locals, not attributes, in the loop: the Python around a small model is the cost.
        freeze, kept = self.freeze, self.kept
        call, feed, forcing, callback = s._step_model, s.feedback, s.forcing, s.callback
        plain = feed is identity and forcing is None  # the output is the next input as is
        x0, state, steps, check_every = s.x0, s.state, s.steps, s.check_every
        stateful, collect, guard = state is not None, kept.collecting, kept.guard
        x, y, check_at, t = x0, None, check_every - 1, 0
        for t in range(steps):
            with step_mode():
                if y is not None:
                    # x: [B, ...] the previous output fed back (with forcing[t - 1])
                    x = y if plain else feed(y) if forcing is None else feed(y, forcing[t - 1])
                    if t == 1:
                        check_fed_back(x, x0)
                # y_t: [B, ...] the model's prediction from x, and the state it leaves
                out = call(x, state) if stateful else call(x)
                if t == 0:
                    y_t, new_state = self._first(out, stateful, x0.shape[0])
                    collect, guard = kept.collecting, kept.guard
                else:
                    y_t, new_state = out if stateful else (out, None)
                if freeze is not None:
                    # done and diverged samples repeat their last output, keep their state
                    y_t, new_state = freeze.step(x, y, y_t, state, new_state)
                state, y = new_state, y_t
                if collect:
                    kept.pending.append(y)
                if callback is not None:
                    callback(t, y)
            yield t, y
            if t == check_at or t + 1 == steps:
                # The host reads the device's flags here only, every check_every steps.
                check_at += check_every
                if guard:
                    check_finite(kept, t)  # raises, naming the first non-finite step
                if freeze is not None and freeze.check():
                    break  # every sample is done
        ran = t + 1  # the step it broke at, or the last
        if freeze is None:
            self.lengths += ran
        else:
            freeze.finish(ran)
        self.state, self.last = state, y

    def _first(self, out: Any, stateful: bool, batch: int) -> tuple[torch.Tensor, Any]:
        """Step 0's `(y, new_state)`, checked; only floats can go non-finite."""
        y, new_state = split_output(out, stateful, 0)
        check_batch(y, batch)
        self.kept.guard = self.kept.guard and y.is_floating_point()
        return y, new_state

    def trajectory(self) -> Trajectory:
        assert self.last is not None  # a run is kept once it has ended
        return Trajectory(
            self.kept.stacked_outputs() if self.keep_all else None,
            self.last,
            self.lengths,
            self.diverged,
            self.state,
        )


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
