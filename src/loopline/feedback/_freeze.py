"""Per-sample freezing for rollouts: `until=` and `on_nonfinite="stop"`, on the device.

A frozen sample repeats its last output and keeps its recurrent state while the others
run on. Which samples are frozen lives in a bool `[B]` tensor that the host reads only at
a check (every `check_every` steps). A step costs one `torch.where` and one `logical_or`
written into a ring of `check_every` rows, beside the criterion itself; at a check the
ring's rows are summed into the counts, so `lengths` (steps taken) costs nothing per step:
a sample's length is the steps run less the steps it was held. While no sample is done
the hold is an identity, so a run whose steps nobody sees skips it (`speculating`) and
rewinds the one window in which a sample finished.
"""

from __future__ import annotations

from typing import Any, cast

import torch

from loopline.feedback._nonfinite import nonfinite
from loopline.feedback._rollout_checks import check_batch
from loopline.feedback.protocols import StopCriterion


class Freeze:
    """The frozen samples of one run, their `lengths` and which of them `diverged`.

    Per step, `F` are the samples frozen after it, `G` those held at it (frozen before it,
    or non-finite now): a held sample does not take the step, and a diverged one is held
    the step it froze (`G == F` summed over the run), a done one only the steps after.
    """

    def __init__(
        self,
        until: StopCriterion | None,
        *,
        stop: bool,
        stateful: bool,
        batch: int,
        device: torch.device,
        window: int,
    ) -> None:
        self.until, self.stop, self.stateful, self.batch = until, stop, stateful, batch
        self._until = cast(StopCriterion, until)  # called only when until is given
        self.lengths = torch.zeros(batch, dtype=torch.int64, device=device)
        self.diverged = torch.zeros(batch, dtype=torch.bool, device=device)
        self.frozen = torch.zeros(batch, dtype=torch.bool, device=device)  # F, now
        # [window, B] F and G of the steps since the last check (at most `window` of them);
        # one ring when G is F.
        self._f = torch.zeros(window, batch, dtype=torch.bool, device=device)
        both = stop and until is not None
        self._g = torch.zeros_like(self._f) if both else self._f
        self._f_sum = torch.zeros_like(self.lengths)  # F summed, with both only
        self._slot = 0  # the ring's row of the next step
        self._frozen_wide = self.frozen
        self._f_rows: list[torch.Tensor] = []  # the rings' rows [B], and [B, 1, ...] views
        self._g_rows: list[torch.Tensor] = []
        self._f_wide: list[torch.Tensor] = []
        self._g_wide: list[torch.Tensor] = []
        # until alone (no stop, no state) is the common case, with a path of its own: with a
        # small model, the Python around the step's two ops is a cost worth cutting.
        self.plain = until is not None and not stop and not stateful
        # Speculating (plain only, set by the run): while no sample is done, the hold is an
        # identity, so it is skipped; the run rewinds a window in which one finished.
        self.speculating = False
        self._none, self._none_wide = self.frozen, self.frozen  # all False, never written

    def _start(self, y: torch.Tensor) -> None:
        """At step 0: NaN needs floats, and the rings' rows, `[B]` and wide for `y`."""
        self.stop = self.stop and y.is_floating_point()
        wide = (*self._f.shape, *(1,) * (y.dim() - 1))  # [window, B, 1, ...]
        self._frozen_wide = self._none_wide = self.frozen.view(wide[1:])
        self._f_rows, self._f_wide = list(self._f.unbind(0)), list(self._f.view(wide).unbind(0))
        if self._g is not self._f:
            self._g_rows, self._g_wide = list(self._g.unbind(0)), list(self._g.view(wide).unbind(0))
        else:
            self._g_rows, self._g_wide = self._f_rows, self._f_wide

    def step(
        self,
        x: torch.Tensor,
        last: torch.Tensor | None,
        y: torch.Tensor,
        state: Any,
        new: Any,
    ) -> tuple[torch.Tensor, Any]:
        """Hold at this step the samples frozen before it; mark those done or diverged now.
        Returns `(y, new_state)` as they go on."""
        if self.plain and last is not None:  # until alone, after step 0
            slot = self._slot
            self._slot = slot + 1
            if not self.speculating:
                # y: [B, ...] a sample frozen before this step repeats its last output
                y = torch.where(self._frozen_wide, last, y)
            # frozen: [B] those, and the samples done now, from the next step on
            torch.logical_or(self.frozen, self._until(y, x), out=self._f_rows[slot])
            self.frozen, self._frozen_wide = self._f_rows[slot], self._f_wide[slot]
            return y, new
        return self._step(x, last, y, state, new)

    def _step(
        self,
        x: torch.Tensor,
        last: torch.Tensor | None,
        y: torch.Tensor,
        state: Any,
        new: Any,
    ) -> tuple[torch.Tensor, Any]:
        """`step` with every option: state, stop and until."""
        if last is None:
            self._start(y)
        slot, before = self._slot, self.frozen
        self._slot = slot + 1
        held, held_wide = before, self._frozen_wide
        if self.stop:
            # held: [B] frozen before, or non-finite now (so diverged)
            held = torch.logical_or(before, nonfinite(y), out=self._g_rows[slot])
            held_wide = self._g_wide[slot]
        if self.stateful and (last is not None or self.stop):
            # new_state: held samples keep theirs
            new = freeze_state(held, state, new, self.batch)
        if last is not None:
            # y: [B, ...] a held sample repeats its last output
            y = torch.where(held_wide, last, y)
        elif self.stop:
            # y: [B, ...] at step 0 there is no last output: a held sample stays at x0
            y = torch.where(held_wide, _stand_still(x, y), y)
        if self.until is not None:
            done = self.until(y, x)  # [B]
            if last is None:
                check_batch(done, self.batch, what="until(y, x)", bool_vector=True)
            torch.logical_or(held, done, out=self._f_rows[slot])
        elif not self.stop:
            return y, new  # integers never go non-finite: nothing freezes
        # frozen: [B] from the next step on (without until, G is F: one ring)
        self.frozen, self._frozen_wide = self._f_rows[slot], self._f_wide[slot]
        return y, new

    def any_frozen(self) -> bool:
        """Whether some sample is frozen now (a host read)."""
        return bool(self.frozen.any())

    def rewind(self) -> None:
        """Back to the start of a window of speculation: nothing frozen, now holding."""
        self._slot, self.speculating = 0, False
        self.frozen, self._frozen_wide = self._none, self._none_wide

    def check(self) -> bool:
        """Fold the ring into the counts; True once every sample is done (with until)."""
        slot, self._slot = self._slot, 0
        # With until, the host reads how many are frozen (it must, to stop): while none is,
        # the ring holds only False. Without, it reads nothing and the ring is folded.
        frozen = int(self.frozen.sum()) if self.until is not None else self.batch
        if frozen:
            self.lengths -= self._g[:slot].sum(0) if self.stop else self._f[:slot].sum(0)
            if self._g is not self._f and self.stop:
                self._f_sum += self._f[:slot].sum(0)
        return self.until is not None and frozen == self.batch

    def finish(self, ran: int) -> None:
        """`lengths` and `diverged` once `ran` steps have run and been checked."""
        self.lengths += ran
        if not self.stop:  # held is frozen before: the step a sample froze at counts
            self.lengths += self.frozen
        elif self._g is self._f:
            self.diverged.copy_(self.frozen)
        else:  # diverged: held at the step it froze (F summed equals G summed)
            self.diverged.copy_(self.frozen & (self._f_sum == ran - self.lengths))


def _stand_still(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """What a sample non-finite at step 0 outputs: its input where outputs are shaped like
    inputs (a state that does not move), else zeros."""
    return x if x.shape == y.shape and x.dtype == y.dtype else torch.zeros_like(y)


def freeze_state(frozen: torch.Tensor, old: Any, new: Any, batch: int) -> Any:
    """Keep the old state of frozen samples. Tensors shaped like nn.LSTM/nn.GRU states
    `[layers, B, H]` or cell states `[B, H]` are frozen; other shapes run on (their batch
    dimension cannot be told)."""
    if new is None or old is None:
        return new
    if isinstance(new, torch.Tensor):
        dim = {2: 0, 3: 1}.get(new.dim())
        if dim is None or new.shape[dim] != batch or new.shape != old.shape:
            return new
        shape = [1] * new.dim()
        shape[dim] = batch
        return torch.where(frozen.reshape(shape), old, new)
    if isinstance(new, tuple) and isinstance(old, tuple) and len(new) == len(old):
        return type(new)(freeze_state(frozen, o, n, batch) for o, n in zip(old, new, strict=True))
    return new
