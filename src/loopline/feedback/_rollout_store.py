"""Where a rollout keeps its outputs, and what its non-finite guard looks at.

The outputs of the steps since the last check are stacked once per check, and that stack
serves both: kept for the trajectory and summed by the guard (NaN or Inf anywhere makes
the sum non-finite), so the guard costs one sum, not an extra copy. When every step is
sure to run and no graph is kept, the stacks are written straight into one `[steps, B,
...]` tensor, so keeping everything costs one copy, as the hand loop's final
`torch.stack` does.
"""

from __future__ import annotations

import math

import torch


class Outputs:
    """The outputs a rollout keeps: every step's (`keep_all`) or none but the last."""

    def __init__(self, steps: int, *, keep_all: bool, guard: bool, preallocate: bool) -> None:
        self.steps, self.keep_all, self.guard = steps, keep_all, guard
        self.preallocate = preallocate and keep_all and guard
        self.pending: list[torch.Tensor] = []  # outputs not yet stacked
        self.chunks: list[torch.Tensor] = []  # [n, B, ...] stacks, kept in order
        self.buffer: torch.Tensor | None = None  # [steps, B, ...] when preallocated
        self.stacked = 0  # steps written into the buffer

    @property
    def collecting(self) -> bool:
        """Whether each step's output must be appended to `pending`."""
        return self.keep_all or self.guard

    def flush(self) -> torch.Tensor:
        """Stack the outputs since the last flush into `[n, B, ...]`, keeping it if asked."""
        pending, self.pending = self.pending, []
        if not self.preallocate:
            recent = torch.stack(pending)
            if self.keep_all:
                self.chunks.append(recent)
            return recent
        if self.buffer is None:
            self.buffer = pending[0].new_empty((self.steps, *pending[0].shape))
        start, self.stacked = self.stacked, self.stacked + len(pending)
        return torch.stack(pending, out=self.buffer[start : self.stacked])

    def finite(self) -> tuple[bool, torch.Tensor]:
        """Stack the recent outputs and tell whether their sum is finite (one host read)."""
        recent = self.flush()
        with torch.no_grad():
            return math.isfinite(recent.sum().item()), recent

    def stacked_outputs(self) -> torch.Tensor:
        """`[T, B, ...]` every kept output."""
        if self.pending:
            self.flush()
        if self.buffer is not None:
            return self.buffer[: self.stacked]
        return self.chunks[0] if len(self.chunks) == 1 else torch.cat(self.chunks)
