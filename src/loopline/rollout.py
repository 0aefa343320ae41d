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
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch

from loopline._rollout_checks import (
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


class RolloutDiverged(RuntimeError):
    """A rollout produced NaN or Inf; `step` and `samples` say where it first happened."""

    def __init__(self, message: str, step: int = -1, samples: list[int] | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.samples = samples or []


@dataclass
class Trajectory:
    """What a rollout produced.

    Attributes:
        outputs: `[T, B, ...]` every step's output (None with `keep="last"`).
        last: `[B, ...]` the last output of each sample.
        lengths: `[B]` int64, the steps each sample took before it was done or diverged.
        diverged: `[B]` bool, samples stopped for a non-finite output.
        state: the final recurrent state (None without state).
    """

    outputs: torch.Tensor | None
    last: torch.Tensor
    lengths: torch.Tensor
    diverged: torch.Tensor
    state: Any


OnNonfinite = Literal["raise", "stop", "ignore"]


class Rollout:
    """The lazy form of `rollout`: iterate it for `(t, y)`, one step at a time.

    Takes the same arguments as `rollout`. After iteration, `trajectory()` gives the same
    `Trajectory` that `rollout` would have returned (with `keep="all"`). Flags are read
    every `check_every` steps, so up to `check_every - 1` frozen steps may be yielded
    after every sample is done, and up to as many steps before `RolloutDiverged`.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        x0: torch.Tensor,
        steps: int,
        *,
        feedback: Callable[..., torch.Tensor] | None = None,
        forcing: torch.Tensor | None = None,
        state: Any = None,
        until: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        on_nonfinite: OnNonfinite = "raise",
        keep: Literal["all", "last"] = "all",
        callback: Callable[[int, torch.Tensor], None] | None = None,
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
        self.outputs: list[torch.Tensor] = []
        batch = x0.shape[0]
        self.lengths = torch.zeros(batch, dtype=torch.int64, device=x0.device)
        self.diverged = torch.zeros(batch, dtype=torch.bool, device=x0.device)
        self.last: torch.Tensor | None = None

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        # Lazily, the grad mode is set per step, so the caller's code between steps runs
        # in its own mode.
        return self._steps(lambda: _grad_context(self.model, self.x0))

    def run(self) -> Trajectory:
        """Run every step at once and return the `Trajectory`."""
        with _grad_context(self.model, self.x0):
            for _ in self._steps(contextlib.nullcontext):
                pass
            return self.trajectory()

    def _steps(
        self, step_mode: Callable[[], contextlib.AbstractContextManager[Any]]
    ) -> Iterator[tuple[int, torch.Tensor]]:
        x, state, batch = self.x0, self.state, self.x0.shape[0]
        tracking = self.until is not None or self.on_nonfinite == "stop"
        frozen = torch.zeros(batch, dtype=torch.bool, device=x.device)
        guard = self.on_nonfinite == "raise"
        recent: deque[torch.Tensor] = deque(maxlen=self.check_every)
        last: torch.Tensor | None = None
        ran = 0
        for t in range(self.steps):
            ran = t + 1
            with step_mode():
                # y: [B, ...], the model's prediction from x: [B, ...]
                y, new_state = split_output(self._call(x, state), state is not None, t)
                if t == 0:
                    check_batch(y, batch)
                if tracking:
                    took = ~frozen  # samples still running at this step
                    if last is not None:
                        # Done samples repeat their last output; their state stops too.
                        y = torch.where(_rows(frozen, y), last, y)
                        new_state = freeze_state(frozen, state, new_state, batch)
                    if self.on_nonfinite == "stop" and y.is_floating_point():
                        bad = ~torch.isfinite(y).flatten(1).all(1) & took
                        if last is not None:
                            y = torch.where(_rows(bad, y), last, y)
                        self.diverged |= bad
                        frozen = frozen | bad
                        took = took & ~bad
                    if self.until is not None:
                        done = self.until(y, x)
                        if t == 0:
                            check_batch(done, batch, what="until(y, x)", bool_vector=True)
                        frozen = frozen | done
                    # A sample's length counts the steps it took, its last one included.
                    self.lengths += took.long()
                state, last = new_state, y
                recent.append(y)
                if self.keep == "all":
                    self.outputs.append(y)
                if self.callback is not None:
                    self.callback(t, y)
            yield t, y
            if (t + 1) % self.check_every == 0 or t + 1 == self.steps:
                if guard and y.is_floating_point() and not _all_finite(recent):
                    self._locate(t, recent)  # raises, unless the sum merely overflowed
                if self.until is not None and bool(frozen.all()):
                    break
            if t + 1 < self.steps:
                with step_mode():
                    x = self._feed(y, x, t)
        if not tracking:
            self.lengths += ran
        self.state, self.last = state, last

    def _call(self, x: torch.Tensor, state: Any) -> Any:
        return self._step_model(x) if state is None else self._step_model(x, state)

    def _feed(self, y: torch.Tensor, x: torch.Tensor, t: int) -> torch.Tensor:
        # x: [B, ...], the next input
        nxt = self.feedback(y) if self.forcing is None else self.feedback(y, self.forcing[t])
        if t == 0:
            check_fed_back(nxt, x)
        return nxt

    def _locate(self, t: int, recent: deque[torch.Tensor]) -> None:
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
            torch.stack(self.outputs) if self.keep == "all" else None,
            self.last,
            self.lengths,
            self.diverged,
            self.state,
        )


def compiled(model: Callable[..., Any]) -> Callable[..., Any]:
    """The model compiled for replay, returning outputs that later replays leave alone."""
    fast = torch.compile(model, mode="reduce-overhead")

    def step(*args: Any) -> Any:
        torch.compiler.cudagraph_mark_step_begin()
        return _cloned(fast(*args))

    return step


def _cloned(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, tuple):
        return type(value)(_cloned(item) for item in value)
    return value


def _rows(flags: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`[B]` flags shaped to broadcast over `like: [B, ...]`."""
    return flags.reshape(flags.shape + (1,) * (like.dim() - 1))


def _all_finite(recent: deque[torch.Tensor]) -> bool:
    """One reduction over the steps since the last check: NaN or Inf anywhere makes the
    sum non-finite (a false alarm from overflow is ruled out by `_locate`)."""
    with torch.no_grad():
        return bool(torch.isfinite(torch.stack(tuple(recent)).sum()))


def _grad_context(model: Any, x0: torch.Tensor) -> contextlib.AbstractContextManager[Any]:
    """inference_mode unless gradients are wanted: grad mode on, and a model in training
    mode or an x0 that requires grad."""
    wanted = torch.is_grad_enabled() and (
        bool(getattr(model, "training", False)) or x0.requires_grad
    )
    return torch.enable_grad() if wanted else torch.inference_mode()


def rollout(
    model: Callable[..., Any],
    x0: torch.Tensor,
    steps: int,
    *,
    feedback: Callable[..., torch.Tensor] | None = None,
    forcing: torch.Tensor | None = None,
    state: Any = None,
    until: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    on_nonfinite: OnNonfinite = "raise",
    keep: Literal["all", "last"] = "all",
    callback: Callable[[int, torch.Tensor], None] | None = None,
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


def converged(
    atol: float = 1e-6, rtol: float = 1e-5
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A stop criterion for fixed points: a sample is done when `|y - x| <= atol + rtol * |x|`
    holds for every element (x is the step's input, y its output).

    Example:
        >>> import torch, loopline
        >>> cosine = lambda x: torch.cos(x)  # converges to 0.739085...
        >>> t = loopline.rollout(cosine, torch.ones(2, 1), 500, until=loopline.converged())
        >>> round(t.last[0, 0].item(), 4), bool((t.lengths < 500).all())
        (0.7391, True)
    """

    def is_done(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # The worst element per sample, compared once: fewer ops than an elementwise <=.
        excess = ((y - x).abs() - rtol * x.abs()).flatten(1).amax(1)  # [B]
        return excess <= atol

    return is_done
