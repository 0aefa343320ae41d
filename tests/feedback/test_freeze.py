import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import loopline
from loopline.feedback._freeze import Freeze, freeze_state

FROZEN = torch.tensor([False, True, False])  # sample 1 of 3 is frozen


def test_freeze_state_keeps_the_frozen_samples_of_an_lstm_state():
    lstm = nn.LSTM(2, 4, num_layers=2)
    x = torch.randn(1, 3, 2)  # [T, B, features]
    old = (torch.randn(2, 3, 4), torch.randn(2, 3, 4))  # (h, c): [layers, B, H]
    _, new = lstm(x, old)
    h, c = freeze_state(FROZEN, old, new, 3)
    for kept, before, after in ((h, old[0], new[0]), (c, old[1], new[1])):
        assert torch.equal(kept[:, 1], before[:, 1])
        assert torch.equal(kept[:, [0, 2]], after[:, [0, 2]])
        assert not torch.equal(before[:, 1], after[:, 1])  # so the test can tell them apart


def test_freeze_state_keeps_the_frozen_samples_of_a_gru_cell_state():
    cell = nn.GRUCell(2, 4)
    old = torch.randn(3, 4)  # [B, H]
    new = cell(torch.randn(3, 2), old)
    kept = freeze_state(FROZEN, old, new, 3)
    assert torch.equal(kept[1], old[1])
    assert torch.equal(kept[[0, 2]], new[[0, 2]])


def test_freeze_state_leaves_running_a_tensor_whose_batch_dim_cannot_be_told():
    for old, new in [
        (torch.zeros(3), torch.ones(3)),  # [B]: one dim
        (torch.zeros(3, 2, 2, 2), torch.ones(3, 2, 2, 2)),  # four dims
        (torch.zeros(2, 5, 4), torch.ones(2, 5, 4)),  # [layers, 5, H] but B is 3
        (torch.zeros(5, 4), torch.ones(5, 4)),  # [5, H] but B is 3
        (torch.zeros(3, 4), torch.ones(3, 5)),  # the state changed shape
    ]:
        assert freeze_state(FROZEN, old, new, 3) is new


def test_freeze_state_goes_into_nested_tuples():
    old = ((torch.zeros(1, 3, 2), torch.zeros(1, 3, 2)), torch.zeros(3, 2))
    new = ((torch.ones(1, 3, 2), torch.ones(1, 3, 2)), torch.ones(3, 2))
    (h, c), z = freeze_state(FROZEN, old, new, 3)
    for kept in (h[0], c[0], z):
        assert kept[:, 0].tolist() == [1.0, 0.0, 1.0]


def test_freeze_state_with_none_returns_the_new_state():
    new = torch.ones(3, 2)
    assert freeze_state(FROZEN, None, None, 3) is None
    assert freeze_state(FROZEN, None, new, 3) is new
    assert freeze_state(FROZEN, torch.zeros(3, 2), None, 3) is None
    # A tuple that changed length runs on, as a whole.
    changed = (torch.ones(3, 2),)
    assert freeze_state(FROZEN, (torch.zeros(3, 2), torch.zeros(3, 2)), changed, 3) is changed


def by_hand(outputs, dones, stop, until):
    """The per-step reference: each step holds the samples frozen before it, then those
    that went non-finite (stop); a sample's length counts the steps it took."""
    batch = outputs[0].shape[0]
    frozen = torch.zeros(batch, dtype=torch.bool)
    lengths = torch.zeros(batch, dtype=torch.int64)
    diverged = torch.zeros(batch, dtype=torch.bool)
    kept, last = [], None
    for y, done in zip(outputs, dones, strict=True):
        took = ~frozen
        if last is not None:
            y = torch.where(frozen[:, None], last, y)
        if stop:
            bad = ~torch.isfinite(y).all(1) & took
            if last is not None:
                y = torch.where(bad[:, None], last, y)
            diverged |= bad
            frozen = frozen | bad
            took = took & ~bad
        if until:
            frozen = frozen | done
        lengths += took.long()
        kept.append(y)
        last = y
    return torch.stack(kept), lengths, diverged, frozen


@settings(max_examples=150, deadline=None)
@given(
    batch=st.integers(1, 4),
    steps=st.integers(1, 12),
    check_every=st.integers(1, 5),
    stop=st.booleans(),
    until=st.booleans(),
    data=st.data(),
)
def test_freeze_counts_lengths_and_diverged_like_the_per_step_reference(
    batch, steps, check_every, stop, until, data
):
    flags = st.lists(st.booleans(), min_size=batch * steps, max_size=batch * steps)
    done = torch.tensor(data.draw(flags)).reshape(steps, batch)
    bad = torch.tensor(data.draw(flags)).reshape(steps, batch)
    outputs = torch.arange(steps * batch * 2, dtype=torch.float32).reshape(steps, batch, 2)
    outputs[:, :, 1] = torch.where(bad, float("nan"), 0.0)
    freeze = Freeze(
        (lambda y, x: done[len(got)]) if until else None,
        stop=stop,
        stateful=False,
        batch=batch,
        device=torch.device("cpu"),
        window=check_every,
    )
    got, last = [], None
    for t in range(steps):
        y, _ = freeze.step(outputs[t], last, outputs[t], None, None)
        got.append(y)
        last = y
        if (t + 1) % check_every == 0 or t + 1 == steps:
            all_done = freeze.check()
            assert all_done == (until and bool(freeze.frozen.all()))
    freeze.finish(steps)
    expected, lengths, diverged, frozen = by_hand(list(outputs), list(done), stop, until)
    torch.testing.assert_close(torch.stack(got), expected, rtol=0, atol=0, equal_nan=True)
    assert freeze.lengths.tolist() == lengths.tolist()
    assert freeze.diverged.tolist() == diverged.tolist()
    assert torch.equal(freeze.frozen, frozen)


def test_freeze_holds_the_state_of_samples_frozen_before_the_step_even_with_one_row():
    # check_every=1: the ring has one row, read (frozen before) and written (after) at once.
    done = [torch.tensor([True, False]), torch.tensor([False, False])]
    freeze = Freeze(
        lambda y, x: done[0],
        stop=True,
        stateful=True,
        batch=2,
        device=torch.device("cpu"),
        window=1,
    )
    ys = [torch.full((2, 1), float(t)) for t in range(3)]  # y: [B, 1] of steps 0, 1, 2
    ys[1][1, 0] = float("nan")  # sample 1 goes bad at step 1
    last, state = None, torch.zeros(2, 1)
    for t in range(3):
        new_state = torch.full((2, 1), t + 1.0)  # the state after step t, had it run
        last, state = freeze.step(ys[t], last, ys[t], state, new_state)
        freeze.check()
    freeze.finish(3)
    # Sample 0 froze at step 0 (done): its state held from step 1 on. Sample 1 went bad at
    # step 1: its output and its state hold from step 0, its last finite step.
    assert state.flatten().tolist() == [1.0, 1.0]
    assert last.flatten().tolist() == [0.0, 0.0]
    assert freeze.lengths.tolist() == [1, 1]
    assert freeze.diverged.tolist() == [False, True]


@pytest.mark.parametrize("check_every", [1, 3, 16])
def test_until_freezes_each_sample_at_its_own_step(check_every):
    x0 = torch.tensor([[1.0], [5.0], [20.0]])
    trajectory = loopline.rollout(
        lambda x: x + 1, x0, 50, until=lambda y, x: y[:, 0] >= 10, check_every=check_every
    )
    # Per sample by hand: 1 -> 10 takes 9 steps, 5 -> 10 takes 5, 20 -> 21 takes 1.
    assert trajectory.lengths.tolist() == [9, 5, 1]
    assert trajectory.outputs.shape[0] >= 9
    assert trajectory.last[:, 0].tolist() == [10.0, 10.0, 21.0]
    assert trajectory.outputs[:9, 0, 0].tolist() == [float(v) for v in range(2, 11)]
    assert trajectory.outputs[4:, 1, 0].eq(10.0).all()  # frozen after its 5th step


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 5),
    steps=st.integers(1, 30),
    start=st.lists(st.integers(0, 20), min_size=5, max_size=5),
    check_every=st.integers(1, 8),
)
def test_per_sample_until_matches_running_each_sample_alone(batch, steps, start, check_every):
    x0 = torch.tensor(start[:batch], dtype=torch.float32)[:, None]

    def until(y, x):
        return y[:, 0] >= 15

    together = loopline.rollout(lambda x: x + 2, x0, steps, until=until, check_every=check_every)
    for b in range(batch):
        alone = loopline.rollout(lambda x: x + 2, x0[b : b + 1], steps, until=until)
        length = int(alone.lengths[0])
        assert int(together.lengths[b]) == length
        assert torch.equal(together.outputs[:length, b], alone.outputs[:length, 0])
        assert torch.equal(together.last[b], alone.last[0])


def frozen_by_hand(cell, head, x0, h0, steps, until):
    """The per-sample freeze written out: a sample done at a step repeats that step's
    output and keeps that step's state from then on."""
    x, h, last, frozen, outputs = x0, h0, None, torch.zeros(len(x0), dtype=torch.bool), []
    lengths = torch.zeros(len(x0), dtype=torch.int64)
    with torch.no_grad():
        for _ in range(steps):
            new_h = cell(x, h)
            y = head(new_h)
            if last is not None:
                y = torch.where(frozen[:, None], last, y)
                new_h = torch.where(frozen[:, None], h, new_h)
            lengths += ~frozen
            frozen = frozen | until(y, x)
            outputs.append(y)
            x, h, last = y, new_h, y
    return torch.stack(outputs), h, lengths


@pytest.mark.parametrize("check_every", [1, 4, 16])
def test_until_with_a_gru_state_freezes_output_and_state_like_the_hand_loop(check_every):
    torch.manual_seed(7)
    cell, head = nn.GRUCell(3, 5), nn.Linear(5, 3)

    def model(x, h):
        h = cell(x, h)
        return head(h), h

    def stops_at(limits):  # done at its limits[b]-th call (so step), per sample
        calls = [0]

        def until(y, x):
            calls[0] += 1
            return torch.tensor(limits) <= calls[0]

        return until

    x0, h0, limits = torch.randn(6, 3), torch.zeros(6, 5), [3, 9, 1, 17, 6, 30]
    with torch.no_grad():
        trajectory = loopline.rollout(
            model, x0, 40, state=h0, until=stops_at(limits), check_every=check_every
        )
    outputs, state, lengths = frozen_by_hand(cell, head, x0, h0, 40, stops_at(limits))
    assert trajectory.lengths.tolist() == lengths.tolist() == limits
    assert torch.equal(trajectory.outputs, outputs[: len(trajectory.outputs)])
    assert torch.equal(trajectory.state, state)  # a run stops once every sample is frozen
