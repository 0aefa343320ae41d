import pytest
import torch
from torch import nn

import loopline
from loopline.feedback._nonfinite import nonfinite


def halved(x0, steps):
    """The outputs of x -> x * 0.5 from x0, exactly (powers of two)."""
    return torch.stack([x0 * 0.5 ** (t + 1) for t in range(steps)])


def nan_at(step, sample):
    def model(x):
        y = x * 0.5
        if model.calls == step:
            y = y.clone()
            y[sample] = float("nan")
        model.calls += 1
        return y

    model.calls = 0
    return model


def planted(plan, value=float("nan")):
    """A per-sample map (each output row depends on its own input row only) that writes
    `value` into sample b at step t for each (t, b) in `plan`."""
    torch.manual_seed(4)
    weight = torch.randn(3, 3) / 2

    def model(x):
        y = torch.tanh(x @ weight) + 0.1
        for t, b in plan:
            if model.calls == t:
                y = y.clone()
                y[b, 1] = value
        model.calls += 1
        return y

    model.calls = 0
    return model


@pytest.mark.parametrize("check_every", [1, 4, 16])
@pytest.mark.parametrize("keep", ["all", "last"])
@pytest.mark.parametrize("grad", [False, True], ids=["inference", "graph kept"])
def test_a_planted_nan_raises_naming_the_first_step_and_sample(check_every, keep, grad):
    # The guard keeps the recent outputs three ways: written into one preallocated tensor
    # (inference, keep all), stacked per check (graph kept), or held for the check only.
    x0 = torch.ones(4, 3, requires_grad=grad)
    with pytest.raises(loopline.RolloutDiverged, match=r"step 6 in samples \[2\]") as caught:
        loopline.rollout(nan_at(6, 2), x0, 20, check_every=check_every, keep=keep)
    assert (caught.value.step, caught.value.samples) == (6, [2])


@pytest.mark.parametrize("check_every", [1, 5, 6, 7, 16])
@pytest.mark.parametrize("until", [None, "never"])
def test_raise_names_the_first_bad_step_and_all_its_samples_not_later_ones(check_every, until):
    # Samples 1 and 3 go bad at step 6 (inf and NaN), sample 0 at step 8: a check may see
    # all three at once, yet the first step is the one named. With check_every 6 the bad
    # step opens a check's window, with 7 it closes one.
    model = planted([(6, 1), (6, 3), (8, 0)])
    never = (lambda y, x: torch.zeros(4, dtype=torch.bool)) if until else None

    def bad_at_6_and_8(x):
        y = model(x)
        if model.calls == 7:
            y = y.clone()
            y[1, 0] = float("inf")
        return y

    with pytest.raises(loopline.RolloutDiverged, match=r"step 6 in samples \[1, 3\]") as caught:
        loopline.rollout(bad_at_6_and_8, torch.ones(4, 3), 30, until=never, check_every=check_every)
    assert (caught.value.step, caught.value.samples) == (6, [1, 3])


def test_a_nan_at_step_0_raises_naming_step_0():
    with pytest.raises(loopline.RolloutDiverged) as caught:
        loopline.rollout(planted([(0, 1)]), torch.ones(3, 3), 5)
    assert (caught.value.step, caught.value.samples) == (0, [1])


def test_a_sum_that_merely_overflows_is_not_a_divergence():
    # float16 tops out at 65504: sixteen outputs of 60000 sum to inf, yet all are finite.
    x0 = torch.full((2, 3), 60000.0, dtype=torch.float16)
    trajectory = loopline.rollout(lambda x: x.clone(), x0, 40)
    assert torch.equal(trajectory.outputs, x0.expand(40, 2, 3))


def test_stop_quarantines_the_diverged_sample_and_runs_the_others():
    trajectory = loopline.rollout(nan_at(6, 2), torch.ones(4, 3), 20, on_nonfinite="stop")
    assert trajectory.diverged.tolist() == [False, False, True, False]
    assert trajectory.lengths.tolist() == [20, 20, 6, 20]
    expected = halved(torch.ones(4, 3), 20)
    healthy = [0, 1, 3]
    assert torch.equal(trajectory.outputs[:, healthy], expected[:, healthy])
    # The diverged sample repeats its last finite output.
    assert torch.equal(trajectory.outputs[6:, 2], expected[5, 2].expand(14, 3))


def planted_gru(step, sample, value, *, outputs):
    """A GRU cell with a linear head, `(x [B, 3], h [B, 4]) -> (y [B, outputs], h)`, that
    writes `value` into sample `sample`'s output at step `step`; and its cell and head."""
    torch.manual_seed(6)
    cell, head = nn.GRUCell(3, 4), nn.Linear(4, outputs)

    def model(x, h):
        h = cell(x, h)
        y = head(h)
        if model.calls == step:
            y = y.clone()
            y[sample] = value
        model.calls += 1
        return y, h

    model.calls = 0
    return model, cell, head


@pytest.mark.parametrize("check_every", [1, 3, 16])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_stop_freezes_each_bad_sample_at_its_step_and_the_others_run_as_if_alone(
    check_every, value
):
    # Sample 1 goes bad at step 4, sample 3 at step 9, sample 2 at step 0 (nothing to
    # repeat yet: it stays at its start, x0); samples 0 and 4 never do.
    x0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(5))
    trajectory = loopline.rollout(
        planted([(4, 1), (9, 3), (0, 2)], value),
        x0,
        12,
        on_nonfinite="stop",
        check_every=check_every,
    )
    assert trajectory.diverged.tolist() == [False, True, True, True, False]
    assert trajectory.lengths.tolist() == [12, 4, 0, 9, 12]
    # A run without the bad values (the same batch, so the same kernels, bit for bit).
    clean = loopline.rollout(planted([]), x0, 12).outputs
    healthy = [0, 4]
    assert torch.equal(trajectory.outputs[:, healthy], clean[:, healthy])
    assert torch.equal(trajectory.outputs[:4, 1], clean[:4, 1])
    assert torch.equal(trajectory.outputs[4:, 1], clean[3, 1].expand(8, 3))
    assert torch.equal(trajectory.outputs[9:, 3], clean[8, 3].expand(3, 3))
    assert torch.equal(trajectory.outputs[:, 2], x0[2].expand(12, 3))
    assert torch.equal(trajectory.last, trajectory.outputs[-1])


@pytest.mark.parametrize("check_every", [1, 2, 16])
def test_stop_with_until_tells_a_done_sample_from_a_diverged_one(check_every):
    # x + 1 per step from 0; done at 5 (the 5th step). Sample 1 goes NaN at step 2, sample
    # 2 at step 4, the step it would be done at: it diverged, and took 4 steps.
    def model(x):
        y = x + 1
        if model.calls in (2, 4):
            y = y.clone()
            y[1 if model.calls == 2 else 2, 0] = float("nan")
        model.calls += 1
        return y

    model.calls = 0
    trajectory = loopline.rollout(
        model,
        torch.zeros(4, 1),
        8,
        until=lambda y, x: y[:, 0] >= 5,
        on_nonfinite="stop",
        check_every=check_every,
    )
    assert trajectory.diverged.tolist() == [False, True, True, False]
    assert trajectory.lengths.tolist() == [5, 2, 4, 5]
    assert trajectory.last[:, 0].tolist() == [5.0, 2.0, 4.0, 5.0]


@pytest.mark.parametrize("check_every", [1, 16])
def test_stop_keeps_the_state_of_a_diverged_sample_and_runs_the_others_alone(check_every):
    model, cell, head = planted_gru(5, 1, float("nan"), outputs=3)
    x0, h0 = torch.randn(3, 3), torch.zeros(3, 4)
    with torch.no_grad():
        trajectory = loopline.rollout(
            model, x0, 9, state=h0, on_nonfinite="stop", check_every=check_every
        )
        x, h, states, outputs = x0, h0, [], []  # the same batch by hand, without the NaN
        for _ in range(9):
            h = cell(x, h)
            x = head(h)
            states.append(h)
            outputs.append(x)
    assert trajectory.diverged.tolist() == [False, True, False]
    assert trajectory.lengths.tolist() == [9, 5, 9]
    # Sample 1 holds its output and its state from step 4, its last finite step: the
    # state of its bad step 5 is dropped with its output. The others ran on as if alone.
    assert torch.equal(trajectory.state[1], states[4][1])
    assert torch.equal(trajectory.outputs[5:, 1], outputs[4][1].expand(4, 3))
    assert torch.equal(trajectory.state[[0, 2]], states[-1][[0, 2]])
    assert torch.equal(trajectory.outputs[:, [0, 2]], torch.stack(outputs)[:, [0, 2]])


@pytest.mark.parametrize("check_every", [1, 3])
def test_stop_at_step_0_keeps_the_nan_out_and_holds_the_sample_at_its_start(check_every):
    # Before, a NaN at step 0 stayed in that sample's outputs: there was no earlier output
    # to repeat. Now the sample stays where it started, as a held sample does later on.
    x0 = torch.ones(3, 3)
    trajectory = loopline.rollout(
        planted([(0, 1)]), x0, 6, on_nonfinite="stop", check_every=check_every
    )
    assert torch.isfinite(trajectory.outputs).all()
    assert torch.equal(trajectory.outputs[:, 1], x0[1].expand(6, 3))
    assert trajectory.diverged.tolist() == [False, True, False]
    assert trajectory.lengths.tolist() == [6, 0, 6]
    alone = loopline.rollout(planted([]), x0[[0, 2]], 6)
    assert torch.equal(trajectory.outputs[:, [0, 2]], alone.outputs)


def test_stop_at_step_0_keeps_the_initial_state_and_zeros_outputs_unlike_inputs():
    model, _, _ = planted_gru(0, 0, float("inf"), outputs=2)  # outputs [B, 2], inputs [B, 3]
    x0, h0 = torch.randn(2, 3), torch.randn(2, 4)
    with torch.no_grad():
        trajectory = loopline.rollout(
            model, x0, 4, state=h0, feedback=lambda y: torch.cat([y, y[:, :1]], 1),
            on_nonfinite="stop",
        )  # fmt: skip
    assert torch.equal(trajectory.outputs[:, 0], torch.zeros(4, 2))
    assert torch.equal(trajectory.state[0], h0[0])
    assert trajectory.diverged.tolist() == [True, False]
    assert trajectory.lengths.tolist() == [0, 4]


def test_ignore_lets_nan_through_and_flags_nothing():
    trajectory = loopline.rollout(nan_at(2, 0), torch.ones(2, 1), 4, on_nonfinite="ignore")
    assert torch.isnan(trajectory.outputs[2:, 0]).all()
    assert trajectory.diverged.tolist() == [False, False]
    assert trajectory.lengths.tolist() == [4, 4]
    assert torch.equal(trajectory.outputs[:, 1], halved(torch.ones(2, 1), 4)[:, 1])


def test_nonfinite_flags_samples_with_nan_or_inf_and_not_large_finite_ones():
    y = torch.zeros(4, 2, 3)
    y[1, 1, 2], y[2, 0, 0], y[3, 1, 1] = float("nan"), float("inf"), -float("inf")
    assert nonfinite(y).tolist() == [False, True, True, True]
    big = torch.full((2, 3), 60000.0, dtype=torch.float16)  # whose sum overflows
    assert nonfinite(big).tolist() == [False, False]
    grad = torch.ones(2, 2, requires_grad=True) * torch.tensor([[1.0], [float("inf")]])
    assert nonfinite(grad).tolist() == [False, True]
