"""One run of a `Rollout`: the loop itself, and all the state a run has.

The loop is the model call and the feedback; freezing (`_freeze`) and the non-finite
guard (`_nonfinite`) are steps beside it. The host reads the device's flags only at a
check, every `check_every` steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Literal, Protocol

import torch

from loopline.feedback._freeze import Freeze
from loopline.feedback._nonfinite import check_finite
from loopline.feedback._rollout_checks import check_batch, check_fed_back, identity, split_output
from loopline.feedback._rollout_modes import wants_grad
from loopline.feedback._rollout_store import Outputs
from loopline.feedback.protocols import StepCallback, StopCriterion
from loopline.feedback.trajectory import Trajectory

OnNonfinite = Literal["raise", "stop", "ignore"]
Keep = Literal["all", "last"]


class Settings(Protocol):
    """What a run reads of its `Rollout`: the arguments it was given."""

    model: Callable[..., Any]
    _step_model: Callable[..., Any]  # the model, compiled when asked
    x0: torch.Tensor
    steps: int
    state: Any
    feedback: Callable[..., torch.Tensor]
    forcing: torch.Tensor | None
    until: StopCriterion | None
    on_nonfinite: OnNonfinite
    keep: Keep
    callback: StepCallback | None
    check_every: int


class Run:
    """One run of a `Rollout`, made afresh for each iteration: all the state of a run.

    It holds no reference to its `Rollout`, which holds the latest run: a cycle would keep
    the outputs alive until the garbage collector found it.
    """

    def __init__(self, settings: Settings) -> None:
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
        self,
        s: Settings,
        step_mode: Callable[[], contextlib.AbstractContextManager[Any]],
        *,
        speculate: bool = False,
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield `(t, y)` for every step of `s`; the run's result is complete once it ends.

        With `speculate` (for `run()`, whose steps nobody sees), `until` alone skips the
        hold while no sample is done; a window of steps in which one finishes is run again,
        holding, so the result is the same, bit for bit, as if every step had held.
        """
        # Locals, not attributes, in the loop: the Python around a small model is the cost.
        freeze, kept = self.freeze, self.kept
        call, feed, forcing, callback = s._step_model, s.feedback, s.forcing, s.callback
        plain = feed is identity and forcing is None  # the output is the next input as is
        x0, state, steps, check_every = s.x0, s.state, s.steps, s.check_every
        stateful, collect, guard = state is not None, kept.collecting, kept.guard
        x, y, check_at, t = x0, None, check_every - 1, 0
        if freeze is not None:
            freeze.speculating = speculate and freeze.plain
        # Where this window of steps began: t, x, y, and how many outputs were kept.
        since: tuple[int, torch.Tensor, torch.Tensor | None, int] = (0, x, y, len(kept.pending))
        while t < steps:
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
                if freeze is not None and freeze.speculating and freeze.any_frozen():
                    # A sample finished inside this window, which did not hold it: run the
                    # window again, holding (the model is called again for these steps).
                    t, x, y, pending = since
                    del kept.pending[pending:]
                    freeze.rewind()
                    continue
                check_at += check_every
                if guard:
                    check_finite(kept, t)  # raises, naming the first non-finite step
                if freeze is not None and freeze.check():
                    break  # every sample is done
                since = (t + 1, x, y, len(kept.pending))
            t += 1
        ran = min(t + 1, steps)  # the step it broke at, or the last
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
