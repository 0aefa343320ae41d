import gc
import weakref

import pytest
import torch
from torch import nn

import loopline

MSE = nn.MSELoss()


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3))


class LSTMStep(nn.Module):
    """One step of an LSTM with a head: (x [B, 3], (h, c)) -> (y [B, 3], (h, c))."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.cell, self.head = nn.LSTMCell(3, 6), nn.Linear(6, 3)

    def forward(self, x, state):
        h, c = self.cell(x, state)
        return self.head(h), (h, c)


def data(steps=8, batch=4):
    torch.manual_seed(1)
    return torch.randn(batch, 3), torch.randn(steps, batch, 3)


def cut(grad, t):
    return t > 0 and (grad == "detach" or (isinstance(grad, int) and t % grad == 0))


def hand_loss(model, x0, targets, grad, state=None):
    """The reference: a plain loop that writes every detach out by hand."""
    x, losses = x0, []
    for t in range(len(targets)):
        if cut(grad, t):
            x = x.detach()
            state = None if state is None else tuple(s.detach() for s in state)
        if state is None:
            y = model(x)
        else:
            y, state = model(x, state)
        losses.append(MSE(y, targets[t]))
        x = y
    return torch.stack(losses).mean()


def grads(model, loss):
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def assert_same(a, b):
    for ga, gb in zip(a, b, strict=True):
        torch.testing.assert_close(ga, gb, rtol=0, atol=1e-6)


@pytest.mark.parametrize("grad", ["full", "detach", 1, 3, 100])
def test_mlp_gradients_equal_the_hand_written_loop(grad):
    model, (x0, targets) = mlp(), data()
    got = grads(model, loopline.unroll(model, x0, targets, loss_fn=MSE, grad=grad).loss)
    assert_same(got, grads(model, hand_loss(model, x0, targets, grad)))


@pytest.mark.parametrize("grad", ["full", "detach", 3])
def test_lstm_gradients_with_state_equal_the_hand_written_loop(grad):
    model, (x0, targets) = LSTMStep(), data()
    state = (torch.zeros(4, 6), torch.zeros(4, 6))
    out = loopline.unroll(model, x0, targets, loss_fn=MSE, grad=grad, state=state)
    assert_same(grads(model, out.loss), grads(model, hand_loss(model, x0, targets, grad, state)))


def test_full_and_detach_differ_so_the_policy_is_real():
    model, (x0, targets) = mlp(), data()
    full = grads(model, loopline.unroll(model, x0, targets, loss_fn=MSE).loss)
    detach = grads(model, loopline.unroll(model, x0, targets, loss_fn=MSE, grad="detach").loss)
    assert not torch.allclose(full[0], detach[0])


def test_every_step_counts_in_the_loss():
    model, (x0, targets) = mlp(), data()
    out = loopline.unroll(model, x0, targets, loss_fn=MSE)
    assert out.step_losses.shape == (8,)
    torch.testing.assert_close(out.loss, out.step_losses.mean())
    weighted = loopline.unroll(model, x0, targets, loss_fn=MSE, weights=[0] * 7 + [1])
    torch.testing.assert_close(weighted.loss, out.step_losses[-1])


def test_delay_feeds_each_output_d_steps_later():
    model, (_, targets) = mlp(), data()
    history = torch.randn(2, 4, 3)
    out = loopline.unroll(model, history, targets, loss_fn=MSE, delay=2)
    inputs, expected = list(history), []
    for t in range(8):
        y = model(inputs[t])
        expected.append(y)
        inputs.append(y)
    torch.testing.assert_close(out.outputs, torch.stack(expected), rtol=0, atol=0)


def test_scheduled_sampling_feeds_the_truth_with_probability_one_and_is_reproducible():
    model, (x0, targets) = mlp(), data()
    forced = loopline.unroll(
        model, x0, targets, loss_fn=MSE, teacher=loopline.scheduled_sampling(1.0)
    )
    inputs = [x0, *targets[:-1]]
    expected = torch.stack([model(x) for x in inputs])
    torch.testing.assert_close(forced.outputs, expected, rtol=0, atol=0)
    runs = [
        loopline.unroll(
            model, x0, targets, loss_fn=MSE, teacher=loopline.scheduled_sampling(0.5, seed=3)
        ).outputs
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])


def test_a_scheduled_teacher_follows_its_schedule_per_training_step():
    teacher = loopline.scheduled_sampling(loopline.schedules.linear(1.0, 0.0, steps=2))
    model, (x0, targets) = mlp(), data()
    first = loopline.unroll(model, x0, targets, loss_fn=MSE, teacher=teacher)  # p = 1
    loopline.unroll(model, x0, targets, loss_fn=MSE, teacher=teacher)  # p = 0.5
    last = loopline.unroll(model, x0, targets, loss_fn=MSE, teacher=teacher)  # p = 0
    free = loopline.unroll(model, x0, targets, loss_fn=MSE)
    assert torch.equal(last.outputs, free.outputs)
    assert not torch.equal(first.outputs, free.outputs)
    assert teacher.state_dict() == {"step": 3}


def test_windows_give_the_same_losses_as_a_truncated_unroll():
    model, (x0, targets) = mlp(), data(steps=10)
    truncated = loopline.unroll(model, x0, targets, loss_fn=MSE, grad=4)
    parts = list(loopline.unroll_windows(model, x0, targets, window=4, loss_fn=MSE))
    assert [len(p.step_losses) for p in parts] == [4, 4, 2]
    torch.testing.assert_close(torch.cat([p.step_losses for p in parts]), truncated.step_losses)


def test_carry_is_the_next_input_a_hand_loop_would_feed():
    model, (x0, targets) = mlp(), data(steps=6)
    forcing = torch.randn(6, 4, 3)

    def feed(y, f):  # the fed-back output, mixed with step t's forcing
        return 0.5 * y + f

    out = loopline.unroll(model, x0, targets, loss_fn=MSE, feedback=feed, forcing=forcing)
    x = x0
    for t in range(6):
        x = feed(model(x), forcing[t])
    assert torch.equal(out.carry, x.detach())


def test_carry_with_a_delay_is_the_next_d_inputs_in_order():
    model, (_, targets) = mlp(), data(steps=5)
    history = torch.randn(2, 4, 3)  # the inputs of steps 0 and 1
    out = loopline.unroll(model, history, targets, loss_fn=MSE, delay=2)
    inputs = list(history)
    for _ in range(5):
        inputs.append(model(inputs[-2]))  # step t's output feeds step t + 2
    assert torch.equal(out.carry, torch.stack(inputs[-2:]).detach())


def test_a_teachers_truth_is_carried_on_like_any_fed_back_input():
    model, (x0, targets) = mlp(), data(steps=3)
    out = loopline.unroll(model, x0, targets, loss_fn=MSE, teacher=loopline.scheduled_sampling(1.0))
    assert torch.equal(out.carry, targets[-1])


def test_going_on_from_carry_and_state_continues_the_same_rollout():
    model, (x0, targets) = LSTMStep(), data(steps=8)
    state = (torch.zeros(4, 6), torch.zeros(4, 6))
    whole = loopline.unroll(model, x0, targets, loss_fn=MSE, state=state)
    first = loopline.unroll(model, x0, targets[:5], loss_fn=MSE, state=state)
    rest = loopline.unroll(model, first.carry, targets[5:], loss_fn=MSE, state=first.state)
    torch.testing.assert_close(torch.cat([first.outputs, rest.outputs]), whole.outputs)
    torch.testing.assert_close(rest.state, whole.state)


def test_windows_hold_no_graph_from_earlier_windows():
    model, (x0, targets) = mlp(), data(steps=12)
    for part in loopline.unroll_windows(model, x0, targets, window=3, loss_fn=MSE):
        assert not part.carry.requires_grad
        part.loss.backward()  # no retain_graph needed, no inplace error


def test_pushforward_takes_one_gradient_step_after_k_free_steps():
    model, (x0, targets) = mlp(), data()
    generator = torch.Generator().manual_seed(0)
    k = int(torch.randint(0, 4, (), generator=torch.Generator().manual_seed(0)))
    out = loopline.pushforward(model, x0, targets, loss_fn=MSE, max_unroll=3, generator=generator)
    x = x0
    with torch.no_grad():
        for _ in range(k):
            x = model(x)
    expected = MSE(model(x), targets[k])
    assert_same(grads(model, out.loss), grads(model, expected))


def test_graph_is_freed_after_backward():
    activations = []

    class Recording(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = mlp()

        def forward(self, x):
            hidden = torch.tanh(self.inner[0](x))
            activations.append(weakref.ref(hidden))
            return self.inner[2](hidden)

    model, (x0, targets) = Recording(), data()
    out = loopline.unroll(model, x0, targets, loss_fn=MSE)
    out.loss.backward()
    gc.collect()
    assert all(ref() is None for ref in activations)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 20}, "targets has 8 steps but steps=20"),
        ({"grad": "some"}, "grad must be 'full', 'detach' or an int >= 1"),
        ({"grad": 0}, "grad must be 'full', 'detach' or an int >= 1"),
        ({"delay": 3}, r"with delay=3, x0 must be a history \[3, B, ...\]"),
        ({"weights": [1, 2]}, r"weights must have shape \(8,\)"),
        ({"loss_fn": nn.MSELoss(reduction="none")}, "loss_fn returned a tensor of shape"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, message):
    model, (x0, targets) = mlp(), data()
    with pytest.raises(ValueError, match=message):
        loopline.unroll(model, x0, targets, **{"loss_fn": MSE, **kwargs})


def test_pushforward_needs_enough_targets():
    model, (x0, targets) = mlp(), data(steps=2)
    with pytest.raises(ValueError, match="targets has 2 steps but max_unroll=4 needs 5"):
        generator = torch.Generator().manual_seed(0)
        loopline.pushforward(model, x0, targets, loss_fn=MSE, max_unroll=4, generator=generator)


def test_a_probability_outside_0_1_is_an_error():
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got 1.5"):
        loopline.scheduled_sampling(1.5)
