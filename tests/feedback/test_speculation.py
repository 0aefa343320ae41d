"""`rollout(..., until=...)` skips the per-step hold while no sample is done, and runs a
window again, holding, once one finishes inside it: the result is bit for bit that of
holding every step (the lazy `Rollout`, whose every step is seen, always holds)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import loopline


class Counting(torch.nn.Module):
    """x -> 0.9 x + c (a contraction to 10 c), counting its calls."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.c = torch.nn.Parameter(torch.linspace(0.5, 1.5, features))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return 0.9 * x + self.c


def reached(limits: torch.Tensor):
    def until(y, x):  # sample b is done once its first feature passes limits[b]
        return y[:, 0] >= limits

    return until


def held_every_step(model, x0, steps, **options):
    lazy = loopline.Rollout(model, x0, steps, **options)
    for _ in lazy:
        pass
    return lazy.trajectory()


def assert_same(a: loopline.Trajectory, b: loopline.Trajectory) -> None:
    assert torch.equal(a.outputs, b.outputs)
    assert torch.equal(a.last, b.last)
    assert torch.equal(a.lengths, b.lengths)
    assert torch.equal(a.diverged, b.diverged)


@settings(max_examples=40, deadline=None)
@given(
    limits=st.lists(st.floats(0.0, 9.0), min_size=1, max_size=6),
    steps=st.integers(1, 60),
    check_every=st.integers(1, 20),
    keep=st.sampled_from(["all", "last"]),
)
def test_speculating_gives_what_holding_every_step_gives(limits, steps, check_every, keep):
    model = Counting(3).eval()
    x0 = torch.zeros(len(limits), 3)
    options = {"until": reached(torch.tensor(limits)), "check_every": check_every}
    fast = loopline.rollout(model, x0, steps, **options)
    slow = held_every_step(model, x0, steps, **options)
    assert torch.equal(fast.lengths, slow.lengths) and torch.equal(fast.last, slow.last)
    if keep == "all":
        assert_same(fast, slow)


def test_the_model_is_called_again_only_for_the_window_a_sample_finished_in():
    model = Counting(2).eval()
    x0 = torch.zeros(4, 2)
    limits = torch.tensor([2.0, 3.0, 100.0, 100.0])  # two finish at steps 4 and 8, two never
    with torch.no_grad():
        trajectory = loopline.rollout(model, x0, 64, until=reached(limits), check_every=16)
    assert trajectory.lengths.tolist() == [5, 9, 64, 64]
    assert model.calls == 64 + 16  # the first window, run again holding; then every step once


def test_a_callback_sees_every_step_once_so_nothing_is_run_again():
    model, seen = Counting(2).eval(), []
    x0 = torch.zeros(2, 2)
    loopline.rollout(
        model, x0, 40, until=reached(torch.tensor([2.0, 3.0])), callback=lambda t, y: seen.append(t)
    )
    assert seen == list(range(16)) and model.calls == 16  # both done by the first check
