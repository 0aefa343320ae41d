"""`unroll` in windows: truncated backpropagation through a long horizon, flat in memory.

Each window is an `unroll` of `window` steps that goes on from where the previous one
stopped (its output, or its next true input, and its state, all detached), so a caller
takes `backward()` and an optimizer step per window and the graph held in memory never
exceeds one window, however long the horizon.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from loopline._checks import check_int, is_int
from loopline._tree import map_tensors
from loopline.feedback._unroll_checks import check_arguments, check_inputs, check_weights
from loopline.feedback.protocols import Feedback, ForcedFeedback
from loopline.feedback.teacher import Teacher
from loopline.feedback.unroll import Grad, unrolled
from loopline.feedback.unrolled import Unrolled

# Keys of Windows' state dict.
START = "start"
CARRY = "carry"
STATE = "state"


def unroll_windows(
    model: Callable[..., Any],
    x0: torch.Tensor | None,
    targets: torch.Tensor,
    *,
    window: int,
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
) -> Windows:
    """`unroll` in windows of `window` steps, the state detached between them.

    Call `backward()` and `optimizer.step()` on each window's loss: the graph held in
    memory never exceeds `window` steps, however long the horizon. Each window goes on
    from the previous one's output (or, with `inputs`, its next input) and state
    (detached). Arguments are as for `unroll`; `weights` cover the whole horizon.

    Example:
        >>> import torch, loopline
        >>> model = torch.nn.Linear(2, 2)
        >>> targets = torch.zeros(10, 4, 2)
        >>> parts = loopline.unroll_windows(model, torch.ones(4, 2), targets, window=4,
        ...                                 loss_fn=torch.nn.MSELoss())
        >>> [len(part.step_losses) for part in parts]
        [4, 4, 2]
    """
    check_int("unroll_windows", "window", window, 1)
    x0 = check_inputs(
        "unroll_windows", x0, inputs, targets, steps, forcing, delay, teacher, whole, grad
    )
    total = check_arguments("unroll_windows", targets, steps, grad, delay, x0, forcing)
    check_weights("unroll_windows", weights)
    all_weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)

    def run(start: int, stop: int, x0: Any, state: Any) -> Unrolled:
        return unrolled(
            "unroll_windows",
            model,
            x0,
            targets[start:stop],
            loss_fn=loss_fn,
            steps=None,
            feedback=feedback,
            # One input more than the window: the true first input of the next one.
            inputs=None if inputs is None else inputs[start : stop + 1],
            whole=whole,
            forcing=None if forcing is None else forcing[start:stop],
            state=state,
            grad=grad,
            teacher=teacher,
            delay=delay,
            weights=None if all_weights is None else all_weights[start:stop],
            strict=strict and start == 0,
        )

    return Windows(run, total, window, x0, state)


class Windows(Iterator[Unrolled]):
    """The windows of `unroll_windows`, one `Unrolled` each; build it with that function.

    Attributes:
        start: the step the next window starts at.
        carry: the input the next window starts from (detached).
        state: the recurrent state the next window starts from (detached); after the last
            window, what a next batch of the same sequences goes on from.

    `state_dict()` holds where the next window starts, `carry` and `state`, so a long
    horizon can be checkpointed between windows and resumed bit for bit.

    Example:
        >>> import torch, loopline
        >>> model, targets = torch.nn.Linear(2, 2), torch.zeros(10, 4, 2)
        >>> def windows():
        ...     return loopline.unroll_windows(model, torch.ones(4, 2), targets, window=4,
        ...                                    loss_fn=torch.nn.MSELoss())
        >>> run = windows()
        >>> first = next(run)
        >>> saved = run.state_dict()  # with the model and the optimizer
        >>> rest = [part.loss for part in run]
        >>> resumed = windows()
        >>> resumed.load_state_dict(saved)
        >>> [part.loss for part in resumed] == rest
        True
    """

    def __init__(
        self, run: Callable[..., Unrolled], total: int, window: int, carry: Any, state: Any
    ) -> None:
        self._run, self._total, self._window = run, total, window
        self._start = 0
        self.carry, self.state = carry, state

    def __iter__(self) -> Windows:
        return self

    @property
    def start(self) -> int:
        """The step (of the horizon) the next window starts at."""
        return self._start

    def __next__(self) -> Unrolled:
        if self._start >= self._total:
            raise StopIteration
        stop = min(self._start + self._window, self._total)
        part = self._run(self._start, stop, self.carry, self.state)
        self.carry, self.state = part.carry, map_tensors(torch.Tensor.detach, part.state)
        self._start = stop
        return part

    def state_dict(self) -> dict[str, Any]:
        return {START: self._start, CARRY: self.carry, STATE: self.state}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        start: Any = saved.get(START) if isinstance(saved, dict) else None
        boundary = is_int(start) and 0 <= start <= self._total and start % self._window == 0
        if not boundary or CARRY not in saved or STATE not in saved:
            raise ValueError(
                "unroll_windows.load_state_dict: the state must hold 'carry', 'state' and "
                f"'start', a window boundary (a multiple of {self._window}) in [0, "
                f"{self._total}]; got start={start!r}"
            )
        self._start, self.carry, self.state = int(start), saved[CARRY], saved[STATE]
