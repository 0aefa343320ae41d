import gc
import weakref

import pytest
import torch
from torch import nn

import loopline


def mlp(width=6):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(width, 16), nn.Tanh(), nn.Linear(16, width)).eval()


def reference(model, x, steps):
    """The hand-written loop: x = model(x), outputs kept."""
    outputs = []
    with torch.no_grad():
        for _ in range(steps):
            x = model(x)
            outputs.append(x)
    return torch.stack(outputs)


def test_mlp_rollout_equals_the_hand_written_loop_exactly():
    model, x0 = mlp(), torch.randn(5, 6)
    trajectory = loopline.rollout(model, x0, 40)
    assert torch.equal(trajectory.outputs, reference(model, x0, 40))
    assert torch.equal(trajectory.last, trajectory.outputs[-1])
    assert trajectory.lengths.tolist() == [40] * 5
    assert not trajectory.diverged.any()


def test_lstm_threads_h_and_c_and_feeds_back_the_last_time_step():
    torch.manual_seed(0)
    lstm, head = nn.LSTM(4, 8, batch_first=True), nn.Linear(8, 4)

    def model(x, state):  # x: [B, 1, 4]
        out, state = lstm(x, state)  # out: [B, 1, 8]
        return head(out[:, -1]), state  # [B, 4]

    x0, h0 = torch.randn(3, 1, 4), (torch.zeros(1, 3, 8), torch.zeros(1, 3, 8))
    trajectory = loopline.rollout(model, x0, 12, state=h0, feedback=lambda y: y[:, None, :])
    x, state, expected = x0, h0, []
    with torch.no_grad():
        for _ in range(12):
            out, state = lstm(x, state)
            y = head(out[:, -1])
            expected.append(y)
            x = y[:, None, :]
    assert torch.equal(trajectory.outputs, torch.stack(expected))
    assert all(torch.equal(a, b) for a, b in zip(trajectory.state, state, strict=True))


def test_gru_cell_state_is_threaded():
    torch.manual_seed(1)
    cell, head = nn.GRUCell(3, 5), nn.Linear(5, 3)

    def model(x, h):
        h = cell(x, h)
        return head(h), h

    x0, h0 = torch.randn(4, 3), torch.zeros(4, 5)
    trajectory = loopline.rollout(model, x0, 9, state=h0)
    x, h, expected = x0, h0, []
    with torch.no_grad():
        for _ in range(9):
            h = cell(x, h)
            x = head(h)
            expected.append(x)
    assert torch.equal(trajectory.outputs, torch.stack(expected))
    assert torch.equal(trajectory.state, h)


def test_forcing_is_fed_with_each_output():
    torch.manual_seed(2)
    model = nn.Linear(5, 3)
    x0, forcing = torch.randn(2, 5), torch.randn(7, 2, 2)
    trajectory = loopline.rollout(model, x0, 7, forcing=forcing)
    x, expected = x0, []
    with torch.no_grad():
        for t in range(7):
            y = model(x)
            expected.append(y)
            x = torch.cat([y, forcing[t]], dim=-1)
    assert torch.equal(trajectory.outputs, torch.stack(expected))


def test_a_short_forcing_is_an_error_not_padding():
    with pytest.raises(ValueError, match=r"forcing has 3 steps but steps=5; .*never padded"):
        loopline.rollout(nn.Linear(5, 3), torch.randn(2, 5), 5, forcing=torch.randn(3, 2, 2))


def test_converged_stops_a_fixed_point_iteration():
    trajectory = loopline.rollout(torch.cos, torch.ones(3, 1), 1000, until=loopline.converged())
    assert (trajectory.lengths < 1000).all()
    assert torch.allclose(trajectory.last, torch.full((3, 1), 0.7390851), atol=1e-5)


def test_converged_compares_integer_states_too():
    halve = lambda x: x // 2  # noqa: E731  (reaches the fixed point 0)
    trajectory = loopline.rollout(halve, torch.tensor([[8], [3]]), 10, until=loopline.converged())
    assert trajectory.lengths.tolist() == [5, 3]
    assert trajectory.last.flatten().tolist() == [0, 0]


def test_lstm_tuple_output_without_state_is_a_clear_error():
    lstm = nn.LSTM(4, 4, batch_first=True)
    with pytest.raises(ValueError, match=r"returned a tuple of 2 at step 0 .*pass state="):
        loopline.rollout(lstm, torch.randn(2, 1, 4), 3)


def test_feedback_that_cannot_feed_the_model_is_caught_at_step_0():
    model = nn.Linear(10, 5)
    with pytest.raises(
        ValueError,
        match=r"feedback produced \(2, 5\) float32 but the model took "
        r"\(2, 10\) float32 at step 0",
    ):
        loopline.rollout(model, torch.randn(2, 10), 3)


def test_until_of_the_wrong_shape_is_an_error():
    with pytest.raises(ValueError, match=r"until\(y, x\) must be a bool tensor of shape \(2,\)"):
        loopline.rollout(lambda x: x, torch.ones(2, 1), 3, until=lambda y, x: y > 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"steps": 0}, "steps must be an int >= 1"),
        ({"on_nonfinite": "warn"}, "on_nonfinite must be"),
        ({"keep": "some"}, "keep must be 'all' or 'last'"),
        ({"check_every": 0}, "check_every must be an int >= 1"),
    ],
)
def test_bad_options_are_errors(options, message):
    kwargs = {"steps": 3, **options}
    with pytest.raises(ValueError, match=message):
        loopline.rollout(lambda x: x, torch.ones(2, 1), **kwargs)


def test_keep_last_holds_no_outputs_but_the_same_last():
    model, x0 = mlp(), torch.randn(3, 6)
    trajectory = loopline.rollout(model, x0, 30, keep="last")
    assert trajectory.outputs is None
    assert torch.equal(trajectory.last, reference(model, x0, 30)[-1])


def test_callback_sees_every_step():
    seen = []
    loopline.rollout(
        lambda x: x + 1, torch.zeros(1, 1), 4, callback=lambda t, y: seen.append((t, y.item()))
    )
    assert seen == [(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0)]


def test_the_iterator_form_yields_steps_lazily_and_ends_with_the_same_trajectory():
    model, x0 = mlp(), torch.randn(2, 6)
    lazy = loopline.Rollout(model, x0, 5)
    steps = [(t, y.clone()) for t, y in lazy]
    assert [t for t, _ in steps] == [0, 1, 2, 3, 4]
    assert torch.equal(torch.stack([y for _, y in steps]), reference(model, x0, 5))
    assert torch.equal(lazy.trajectory().outputs, reference(model, x0, 5))
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


def test_runs_in_inference_mode_for_an_eval_model_and_keeps_the_graph_in_training():
    model, x0 = mlp(), torch.randn(2, 6)
    assert loopline.rollout(model, x0, 3).outputs.is_inference()
    model.train()
    trajectory = loopline.rollout(model, x0, 3)
    assert trajectory.outputs.requires_grad
    trajectory.outputs.sum().backward()
    assert model[0].weight.grad is not None


@pytest.mark.slow
def test_compiled_rollout_matches_the_eager_one():
    model, x0 = mlp(), torch.randn(3, 6)
    eager = loopline.rollout(model, x0, 20)
    fast = loopline.rollout(model, x0, 20, compile=True)
    torch.testing.assert_close(fast.outputs, eager.outputs, rtol=1e-5, atol=1e-6)


def test_gradients_through_a_training_rollout_equal_the_hand_loop():
    model, x0 = mlp().train(), torch.randn(2, 6)
    loopline.rollout(model, x0, 5).outputs.pow(2).sum().backward()
    got = model[0].weight.grad.clone()
    model.zero_grad()
    x, outputs = x0, []
    for _ in range(5):
        x = model(x)
        outputs.append(x)
    torch.stack(outputs).pow(2).sum().backward()
    assert torch.equal(got, model[0].weight.grad)


def test_iterating_a_rollout_twice_runs_it_afresh_each_time():
    # A GRU cell, so the second pass would start from the first pass's state if the run
    # state stayed on the object; until, so lengths are counted per sample.
    torch.manual_seed(3)
    cell, head = nn.GRUCell(2, 4), nn.Linear(4, 2)

    def model(x, h):
        h = cell(x, h)
        return head(h), h

    x0, h0 = torch.randn(3, 2), torch.zeros(3, 4)
    lazy = loopline.Rollout(
        model, x0, 3, state=h0, until=lambda y, x: torch.zeros(3, dtype=torch.bool)
    )
    with torch.no_grad():
        passes = [[y.clone() for _, y in lazy] for _ in range(2)]
    first, second = passes
    assert len(second) == 3
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    trajectory = lazy.trajectory()
    assert trajectory.lengths.tolist() == [3, 3, 3]
    assert torch.equal(trajectory.outputs, torch.stack(first))
    assert torch.equal(trajectory.state, loopline.rollout(model, x0, 3, state=h0).state)


def test_trajectory_gives_the_latest_pass_and_run_equals_rollout():
    model, x0 = mlp(), torch.randn(2, 6)
    lazy = loopline.Rollout(model, x0, 4, until=lambda y, x: y[:, 0] > 1e9)
    once = lazy.run()
    twice = lazy.run()
    for a, b in (
        (once, twice),
        (twice, loopline.rollout(model, x0, 4, until=lambda y, x: y[:, 0] > 1e9)),
    ):
        assert torch.equal(a.outputs, b.outputs)
        assert torch.equal(a.last, b.last) and torch.equal(a.lengths, b.lengths)
        assert torch.equal(a.diverged, b.diverged)
    assert twice.lengths.tolist() == [4, 4]
    assert lazy.trajectory().lengths.tolist() == [4, 4]


def test_trajectory_before_any_run_is_a_clear_error():
    lazy = loopline.Rollout(lambda x: x, torch.ones(1, 1), 3)
    with pytest.raises(RuntimeError, match=r"Rollout.trajectory\(\): iterate the rollout"):
        lazy.trajectory()


def test_a_run_rollout_is_freed_at_once_not_left_to_the_garbage_collector():
    # A cycle (the rollout holding its latest run, the run its rollout) would keep every
    # run's outputs alive until a collection: a leak in a loop of rollouts.
    gc.collect()
    gc.disable()
    try:
        lazy = loopline.Rollout(lambda x: x + 1, torch.zeros(2, 1), 5, until=loopline.converged())
        trajectory = lazy.run()
        freed = weakref.ref(lazy)
        del lazy
        assert freed() is None
    finally:
        gc.enable()
    assert trajectory.lengths.tolist() == [5, 5]


def test_the_steps_yielded_with_until_stay_as_they_were_yielded():
    # A yielded step is the very tensor kept for the trajectory and held by the next step:
    # no later step may change it.
    model, x0 = mlp(), torch.randn(3, 6)
    lazy = loopline.Rollout(model, x0, 50, until=lambda y, x: y[:, 0] > 1e9, check_every=4)
    with torch.no_grad():
        yielded = [y for _, y in lazy]
    assert torch.equal(torch.stack(yielded), reference(model, x0, 50))
    assert torch.equal(lazy.trajectory().outputs, reference(model, x0, 50))


def test_an_iteration_left_half_way_leaves_the_latest_finished_run_as_the_result():
    lazy = loopline.Rollout(lambda x: x + 1, torch.zeros(1, 1), 4)
    full = lazy.run()
    for t, _ in lazy:
        if t == 1:
            break
    assert torch.equal(lazy.trajectory().outputs, full.outputs)
    assert lazy.trajectory().lengths.tolist() == [4]
