"""Strict targets and weights (issue 13, item 3): targets shaped [T, B, 1], [T, 1, D] or
[T, D] for outputs [T, B, D] used to broadcast with at most a UserWarning, and all-zero
weights gave a NaN loss without a word."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import loopline

MSE = nn.MSELoss()


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3))


def start(batch=4):
    torch.manual_seed(1)
    return torch.randn(batch, 3)


@pytest.mark.parametrize(
    ("shape", "how"),
    [
        ((6, 4, 1), "it would only broadcast"),
        ((6, 1, 3), "it would only broadcast"),
        ((6, 3), "it would only broadcast"),
        ((6, 4, 2), "they do not match"),
    ],
)
@pytest.mark.parametrize("call", ["unroll", "unroll_windows", "pushforward"])
def test_a_target_of_another_shape_is_an_error_naming_the_function(shape, how, call):
    model, x0, targets = mlp(), start(), torch.zeros(shape)
    expected = f"{call}: at step 0 the target has shape {tuple(shape[1:])} but the model's "
    expected += f"output has shape (4, 3); {how}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        if call == "unroll":
            loopline.unroll(model, x0, targets, loss_fn=MSE)
        elif call == "unroll_windows":
            list(loopline.unroll_windows(model, x0, targets, window=2, loss_fn=MSE))
        else:
            loopline.pushforward(model, x0, targets, loss_fn=MSE, k=2)


def test_strict_false_lets_a_loss_take_another_target_on_purpose():
    def against_the_mean(y, target):  # a target of one number per sample, by design
        return ((y.mean(dim=-1, keepdim=True) - target) ** 2).mean()

    targets = torch.zeros(5, 4, 1)
    out = loopline.unroll(mlp(), start(), targets, loss_fn=against_the_mean, strict=False)
    assert out.step_losses.shape == (5,)


def test_class_index_targets_are_not_compared_with_the_logits():
    # A token model: logits [B, V] against class ids [B]; the input fed back is softmax.
    torch.manual_seed(0)
    model = nn.Linear(5, 5)
    tokens = torch.randint(0, 5, (6, 5))  # [T, B] with B == V: would broadcast if float
    out = loopline.unroll(
        model,
        torch.softmax(torch.randn(5, 5), -1),
        tokens,
        loss_fn=nn.CrossEntropyLoss(),
        feedback=lambda logits: torch.softmax(logits, -1),
    )
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("weights", [[0.0] * 6, [1, 1, -1, 1, 1, 1], [1, float("nan"), 1, 1, 1, 1]])
def test_weights_that_are_negative_or_all_zero_are_an_error(weights):
    with pytest.raises(ValueError, match=r"unroll: weights must be finite and >= 0 with at"):
        loopline.unroll(mlp(), start(), torch.zeros(6, 4, 3), loss_fn=MSE, weights=weights)


def test_a_window_whose_weights_are_all_zero_has_a_zero_loss():
    weights = [0, 0, 1, 1, 2, 2]
    parts = loopline.unroll_windows(
        mlp(), start(), torch.zeros(6, 4, 3), window=2, loss_fn=MSE, weights=weights
    )
    losses = [part.loss for part in parts]
    assert losses[0].item() == 0.0 and all(torch.isfinite(loss) for loss in losses)


def test_a_feedback_error_of_unroll_windows_names_unroll_windows():
    with pytest.raises(ValueError, match=r"^unroll_windows: feedback produced \(4, 6\)"):
        list(
            loopline.unroll_windows(
                mlp(),
                start(),
                torch.zeros(4, 4, 3),
                window=2,
                loss_fn=MSE,
                feedback=lambda y: torch.cat([y, y], -1),
            )
        )
