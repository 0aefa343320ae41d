"""The demo's baselines against forecasts worked out by hand on tiny series."""

from __future__ import annotations

import torch

from loopline import rollout
from loopline.demo import baselines
from loopline.demo.baselines import Lagged, fit_ar, history_needed, persistence, seasonal_naive


def roll(forecast: baselines.Forecast, history: list[float], steps: int) -> list[float]:
    """Forecast `steps` values of a univariate series from its `history` (oldest first)."""
    values = torch.tensor(history)[:, None, None]  # [P + 1, B=1, D=1]
    out = rollout(forecast, values[-1], steps, state=values[:-1]).outputs
    assert out is not None
    return [round(v, 6) for v in out.flatten().tolist()]


def test_persistence_repeats_the_last_value() -> None:
    assert roll(persistence, [3.0, 1.0, 2.0], 4) == [2.0, 2.0, 2.0, 2.0]


def test_seasonal_naive_repeats_the_last_season() -> None:
    # Season 3: the value 3 steps before, and past one season its own forecast again.
    assert roll(seasonal_naive(3, 1), [9.0, 1.0, 2.0, 3.0], 7) == [1, 2, 3, 1, 2, 3, 1]


def test_seasonal_naive_of_one_step_is_persistence() -> None:
    assert roll(seasonal_naive(1, 1), [1.0, 5.0], 3) == [5.0, 5.0, 5.0]


def test_a_fitted_ar_continues_a_straight_line_and_a_geometric_series() -> None:
    line = torch.arange(20.0)[:, None, None]  # 0, 1, ..., 19
    assert roll(fit_ar(line, order=2), [18.0, 19.0], 3) == [20.0, 21.0, 22.0]
    geometric = (0.9 ** torch.arange(30.0))[:, None, None]
    model = fit_ar(geometric, order=1)
    expected = [0.9**k for k in (1, 2, 3)]
    assert torch.allclose(torch.tensor(roll(model, [1.0], 3)), torch.tensor(expected), atol=1e-5)


def test_ar_least_squares_matches_the_normal_equations_by_hand() -> None:
    # y_{t+1} = a y_t + c on 1, 2, 4, 5: pairs (1, 2), (2, 4), (4, 5).
    # Normal equations: sum x^2 = 21, sum x = 7, n = 3, sum xy = 30, sum y = 11;
    # a = (3 * 30 - 7 * 11) / (3 * 21 - 49) = 13 / 14, c = (11 - 7a) / 3 = 1.5.
    model = fit_ar(torch.tensor([1.0, 2.0, 4.0, 5.0])[:, None, None], order=1)
    assert torch.allclose(model.coef.flatten(), torch.tensor([13 / 14, 1.5]), atol=1e-5)


def test_a_multivariate_ar_uses_every_feature_and_every_series() -> None:
    # Two series of a rotation: x' = -y, y' = x, so one lag fits it exactly.
    angle = torch.arange(12.0) * torch.pi / 2
    series = torch.stack([angle.cos(), angle.sin()], dim=-1)  # [T, 2]
    model = fit_ar(torch.stack([series, 2 * series], dim=1), order=1)  # [T, N=2, D=2]
    y, state = model(torch.tensor([[1.0, 0.0]]), torch.zeros(0, 1, 2))
    assert torch.allclose(y, torch.tensor([[0.0, 1.0]]), atol=1e-5)
    assert state.shape == (0, 1, 2)


def test_lagged_slides_its_window_over_the_forecast() -> None:
    model = Lagged(torch.tensor([[1.0], [0.0], [0.0], [0.0]]))  # order 3: y = x_{t-2}
    y, window = model(torch.tensor([[3.0]]), torch.tensor([[[1.0]], [[2.0]]]))
    assert y.item() == 1.0 and window.flatten().tolist() == [2.0, 3.0]


def test_history_needed_covers_the_ar_lags_and_the_season() -> None:
    assert history_needed(None) == baselines.AR_ORDER - 1
    assert history_needed(1) == baselines.AR_ORDER - 1
    assert history_needed(24) == 23
