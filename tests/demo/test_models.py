"""The demo's forecasters. The quadratic one, an RK4 step of a learned field on whitened
linear and quadratic terms, can hold Lorenz-63's own step exactly, and it learns it."""

from __future__ import annotations

import pytest
import torch

from loopline import horizon_error, rollout, valid_time
from loopline.demo import lorenz
from loopline.demo.models import STEP, QuadraticField, ResidualMLP, build, describe
from loopline.demo.train import MSE, _adam


def test_the_untrained_quadratic_model_is_the_identity() -> None:
    x = torch.randn(7, 3)
    assert torch.equal(QuadraticField(3, sample=torch.randn(500, 3))(x), x)


def test_build_names_each_model_and_refuses_others() -> None:
    assert isinstance(build("quadratic", 2), QuadraticField)
    assert isinstance(build("mlp", 2), ResidualMLP)
    for call in (build, describe):
        with pytest.raises(ValueError, match="unknown model 'lstm'; the models are quadratic, mlp"):
            call("lstm", 2)


def test_whitened_features_of_the_sample_have_mean_zero_and_covariance_one() -> None:
    sample = torch.randn(4000, 3, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.2]) + 2
    model = QuadraticField(3, sample=sample).double()
    features = model.features(sample)  # [N, 9]
    assert features.shape == (4000, 9)
    # Fitted in float64, kept in float32 buffers: close to 1e-6.
    zeros, eye = torch.zeros(9, dtype=torch.float64), torch.eye(9, dtype=torch.float64)
    torch.testing.assert_close(features.mean(0), zeros, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cov(features.T), eye, atol=1e-5, rtol=0)


def test_a_sample_with_a_constant_or_repeated_column_still_whitens_to_finite_numbers() -> None:
    x = torch.randn(300, 1)
    sample = torch.cat([x, x, torch.full_like(x, 4.0)], dim=1)  # a column twice, one constant
    model = QuadraticField(3, sample=sample)
    assert torch.isfinite(model.whiten).all() and torch.isfinite(model.features(sample)).all()


def field_weights(model: QuadraticField, states: torch.Tensor) -> None:
    """Set the field to Lorenz-63's in normalized units, by least squares on its terms."""
    mean, std = torch.tensor(lorenz.MEAN).double(), torch.tensor(lorenz.STD).double()
    field = lorenz.lorenz(states.double() * std + mean) / std * (lorenz.DT / STEP)  # [N, 3]
    features = torch.cat([model.features(states.double()), torch.ones(len(states), 1)], 1)
    solution = torch.linalg.lstsq(features, field).solution  # [F + 1, 3]
    model.field.weight.copy_(solution[:-1].T)
    model.field.bias.copy_(solution[-1])


@torch.no_grad()
def test_the_model_can_hold_the_datas_own_rk4_step_exactly() -> None:
    states = lorenz.normalize(lorenz.random_states(256, torch.Generator().manual_seed(0)))
    model = QuadraticField(3, sample=states).double()
    field_weights(model, states)
    raw = states.double() * torch.tensor(lorenz.STD) + torch.tensor(lorenz.MEAN)
    expected = (lorenz.rk4(raw) - torch.tensor(lorenz.MEAN)) / torch.tensor(lorenz.STD)
    torch.testing.assert_close(model(states.double()), expected, atol=1e-12, rtol=0)


def test_one_step_training_learns_a_forecaster_valid_for_over_seven_lyapunov_times() -> None:
    # The demo's recipe without its stream: Adam (lr 5e-3, cosine) on one-step pairs of
    # clean trajectories, 1,500 steps of 256; scored on 32 held-out rollouts of 9 LT.
    generator = torch.Generator().manual_seed(0)
    data = lorenz.observe(256, 400, 0.0, generator)  # [401, 256, 3]
    model = QuadraticField(3, sample=data.reshape(-1, 3))
    optimizer = _adam(model, 5e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 1500)
    for _ in range(1500):
        t = torch.randint(400, (256,), generator=generator)
        n = torch.randint(256, (256,), generator=generator)
        loss = MSE(model(data[t, n]), data[t + 1, n])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    test = lorenz.held_out(32, round(9 * lorenz.LYAPUNOV_STEPS), seed=0)
    with torch.no_grad():
        outputs = rollout(model, test[0], len(test) - 1).outputs
    errors = horizon_error(outputs, test[1:], per_sample=True)
    valid = valid_time(errors, 0.5, dt=1 / lorenz.LYAPUNOV_STEPS)
    assert valid.median() > 7, valid.median()
