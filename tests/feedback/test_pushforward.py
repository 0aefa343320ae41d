"""A configurable pushforward (issue 13, item 2): it returns the k it used, takes a fixed
k or a checkpointable draw, never touches the global RNG, and checks shapes at step 0
whatever k is (a model that squeezed the batch away failed only for some k)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import loopline

MSE = nn.MSELoss()


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3))


def data(steps=5, batch=4):
    torch.manual_seed(1)
    return torch.randn(batch, 3), torch.randn(steps, batch, 3)


def grads(model, loss):
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("k", [0, 1, 3])
def test_a_fixed_k_is_the_hand_written_pushforward(k):
    model, (x0, targets) = mlp(), data()
    out = loopline.pushforward(model, x0, targets, loss_fn=MSE, k=k)
    x = x0
    with torch.no_grad():
        for _ in range(k):
            x = model(x)
    expected = MSE(model(x), targets[k])
    assert out.k == k
    for got, want in zip(grads(model, out.loss), grads(model, expected), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_the_caller_can_draw_k_first_and_build_only_the_target_it_needs():
    model, (x0, targets) = mlp(), data()
    draw = loopline.PushforwardSteps(3, seed=5)
    k = draw()
    out = loopline.pushforward(model, x0, targets[: k + 1], loss_fn=MSE, k=k)
    assert out.k == k


def test_drawn_ks_resume_from_the_draws_state_and_leave_the_global_rng_alone():
    model, (x0, targets) = mlp(), data()
    draw = loopline.PushforwardSteps(4, seed=2)
    before = torch.get_rng_state()
    first = [loopline.pushforward(model, x0, targets, loss_fn=MSE, k=draw).k for _ in range(6)]
    assert torch.equal(torch.get_rng_state(), before)
    saved = draw.state_dict()
    later = [draw() for _ in range(20)]
    resumed = loopline.PushforwardSteps(4, seed=2)
    resumed.load_state_dict(saved)
    assert [resumed() for _ in range(20)] == later
    assert set(first + later) <= set(range(5)) and len(set(later)) > 1


def test_without_k_or_a_generator_it_refuses_to_draw_from_the_global_rng():
    model, (x0, targets) = mlp(), data()
    with pytest.raises(ValueError, match=r"pushforward: pass k=.*global RNG"):
        loopline.pushforward(model, x0, targets, loss_fn=MSE, max_unroll=3)


@pytest.mark.parametrize("k", [0, 2])
def test_a_model_that_squeezes_the_batch_fails_the_same_way_for_every_k(k):
    model, (x0, targets) = (lambda x: x.sum(0)), data()
    with pytest.raises(ValueError, match=r"^pushforward: feedback produced \(3,\) float32"):
        loopline.pushforward(model, x0, targets, loss_fn=MSE, k=k)


@pytest.mark.parametrize("k", [-1, 5, 2.5, "2"])
def test_a_k_outside_the_targets_is_an_error(k):
    model, (x0, targets) = mlp(), data()
    with pytest.raises(ValueError, match=r"k must be an int in \[0, 4\] \(targets has 5"):
        loopline.pushforward(model, x0, targets, loss_fn=MSE, k=k)


def test_targets_too_short_for_the_draw_are_refused_before_any_draw():
    model, (x0, targets) = mlp(), data(steps=2)
    draw = loopline.PushforwardSteps(3, seed=0)
    state = draw.state_dict()
    with pytest.raises(ValueError, match=r"targets has 2 steps but k may be drawn up to 3"):
        loopline.pushforward(model, x0, targets, loss_fn=MSE, k=draw)
    assert torch.equal(draw.state_dict()["generator"], state["generator"])
