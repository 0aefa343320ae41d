"""Step losses of a whole-window call (feedback/_whole.py): the flattened fast path for
the common mean-reduced losses, the vmap'd call and the per-step fallback all give each
step's loss exactly as calling loss_fn on that step would."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from loopline.feedback._whole import step_losses_of


def per_step(loss_fn, ys, truths):
    return torch.stack([loss_fn(ys[t], truths[t]) for t in range(len(ys))])


def classes():
    torch.manual_seed(0)
    ys, truths = torch.randn(5, 4, 7, dtype=torch.float64), torch.randint(0, 7, (5, 4))
    truths[1, 2] = -100  # one ignored target
    truths[3] = -100  # a step with every target ignored: NaN, as cross_entropy gives
    return ys, truths


@pytest.mark.parametrize(
    "loss_fn",
    [
        nn.CrossEntropyLoss(),
        nn.CrossEntropyLoss(label_smoothing=0.1),
        nn.CrossEntropyLoss(weight=torch.rand(7, dtype=torch.float64)),
    ],
)
def test_cross_entropy_step_losses_equal_one_call_per_step(loss_fn):
    ys, truths = classes()
    got, want = step_losses_of("unroll", loss_fn, ys, truths), per_step(loss_fn, ys, truths)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize(
    "loss_fn", [nn.MSELoss(), nn.L1Loss(), nn.SmoothL1Loss(), lambda y, t: ((y - t) ** 4).mean()]
)
def test_regression_step_losses_equal_one_call_per_step(loss_fn):
    torch.manual_seed(1)
    ys, truths = (
        torch.randn(6, 3, 2, dtype=torch.float64),
        torch.randn(6, 3, 2, dtype=torch.float64),
    )
    got, want = step_losses_of("unroll", loss_fn, ys, truths), per_step(loss_fn, ys, truths)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_a_loss_vmap_cannot_trace_falls_back_to_one_call_per_step():
    def reads_a_number(y, t):
        return (y - t).abs().mean() * (2.0 if float(t.sum()) > 0 else 1.0)

    ys, truths = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    got = step_losses_of("unroll", reads_a_number, ys, truths)
    torch.testing.assert_close(got, per_step(reads_a_number, ys, truths), rtol=0, atol=0)


def test_a_loss_that_is_not_a_scalar_is_an_error():
    ys = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"unroll: loss_fn returned a tensor of shape \(3,\)"):
        step_losses_of("unroll", nn.MSELoss(reduction="none"), ys, ys)
