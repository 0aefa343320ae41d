"""The forecasts a trained model has to beat, rolled out like the models themselves.

Each baseline is a small forecaster `(x, state) -> (y, state)` that `rollout` feeds its
own outputs, as it feeds the trained models; its state is the window of observations
before the current one, started from `Task.history`, so that it knows only what a
forecast made at `test[0]` could know:

- persistence: the last value repeated ("tomorrow equals today");
- linear AR(p): the next value a linear function of the last p (and a constant), fitted
  by least squares on the task's training observations (`Task.observed`);
- seasonal naive (N): the value one season of N steps earlier, for a CSV series given
  `--season N` (its season repeats itself once the forecast passes a season).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from loopline.demo.tasks import Task

AR_ORDER = 4  # the linear model's lags: enough for a smooth series' slope and curvature
Forecast = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def history_needed(season: int | None) -> int:
    """The observations before `test[0]` that the baselines need (`Task.history`).

    Example:
        >>> history_needed(None), history_needed(12)
        (3, 11)
    """
    return max(AR_ORDER, season or 1) - 1


class Lagged:
    """`y = [x_{t-p+1}, ..., x_t, 1] @ coef`: a linear forecast from the last p values.

    The state is the window `[P, B, D]` of earlier values (oldest first, P >= p - 1);
    each step appends `x` and drops the oldest, so the window slides over the forecast.

    Example:
        >>> import torch
        >>> trend = Lagged(torch.tensor([[-1.0], [2.0], [0.0]]))  # 2 x_t - x_{t-1}
        >>> y, window = trend(torch.tensor([[2.0]]), torch.tensor([[[1.0]]]))
        >>> y.tolist(), window.flatten().tolist()
        ([[3.0]], [2.0])
    """

    def __init__(self, coef: torch.Tensor) -> None:
        self.coef = coef  # [p * D + 1, D]
        self.order = (coef.shape[0] - 1) // coef.shape[1]

    def __call__(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen = torch.cat([state, x[None]])  # [P + 1, B, D]
        y = features(seen[len(seen) - self.order :]) @ self.coef.to(x.dtype)  # [B, D]
        return y, seen[1:]


def features(lags: torch.Tensor) -> torch.Tensor:
    """`[p, ..., D]` lags (oldest first) as rows `[..., p * D + 1]` with a constant 1."""
    flat = lags.movedim(0, -2).flatten(-2)  # [..., p * D]
    return torch.cat([flat, torch.ones_like(flat[..., :1])], dim=-1)


def fit_ar(observed: torch.Tensor, order: int = AR_ORDER) -> Lagged:
    """The least-squares linear AR(`order`) model of series `observed: [T, N, D]`.

    Every step of every series with `order` values before it is one equation; the
    solve is in float64.

    Example:
        >>> import torch
        >>> line = torch.arange(10.0)[:, None, None]  # one series: 0, 1, ..., 9
        >>> model = fit_ar(line, order=2)
        >>> y, _ = model(torch.tensor([[9.0]]), torch.tensor([[[8.0]]]))
        >>> round(y.item(), 4)
        10.0
    """
    observed = observed.double()
    steps = len(observed) - order  # equations per series
    if steps < 1:
        raise ValueError(f"an AR({order}) fit needs more than {order} steps, got {len(observed)}")
    lags = torch.stack([observed[k : k + steps] for k in range(order)])  # [p, S, N, D]
    inputs = features(lags).flatten(0, 1)  # [S * N, p * D + 1]
    targets = observed[order:].flatten(0, 1)  # [S * N, D]
    return Lagged(torch.linalg.lstsq(inputs, targets, driver="gelsd").solution.float())


def seasonal_naive(season: int, dim: int) -> Lagged:
    """The forecast one season back: `y_{t+1} = x_{t+1-season}` for every feature.

    Example:
        >>> import torch
        >>> model = seasonal_naive(3, 1)
        >>> y, _ = model(torch.tensor([[2.0]]), torch.tensor([[[0.0]], [[1.0]]]))
        >>> y.item()
        0.0
    """
    coef = torch.zeros(season * dim + 1, dim)
    coef[:dim] = torch.eye(dim)  # the oldest of the last `season` values
    return Lagged(coef)


def persistence(x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The last value, repeated.

    Example:
        >>> import torch
        >>> persistence(torch.tensor([[1.5]]), torch.zeros(0, 1, 1))[0].tolist()
        [[1.5]]
    """
    return x.clone(), state


@dataclass
class Baseline:
    """A baseline ready to roll out: its name, forecaster, initial state, fitting time."""

    name: str
    forecast: Forecast
    state: torch.Tensor
    seconds: float


def baselines(task: Task) -> list[Baseline]:
    """Persistence, the fitted linear AR, and with `task.season` the seasonal naive one.

    Raises:
        ValueError: `task.history` shorter than `history_needed(task.season)`.
    """
    needed = history_needed(task.season)
    if len(task.history) < needed:
        raise ValueError(f"the baselines need {needed} observations before test[0]")
    history = task.history
    dim = history.shape[-1]
    started = time.perf_counter()
    ar = fit_ar(task.observed)
    fitted = time.perf_counter() - started
    chosen = [
        Baseline("persistence", persistence, history[:0], 0.0),
        Baseline(f"linear AR({AR_ORDER})", ar, history[len(history) - AR_ORDER + 1 :], fitted),
    ]
    if task.season is not None:
        seasonal = seasonal_naive(task.season, dim)
        window = history[len(history) - task.season + 1 :]
        chosen.append(Baseline(f"seasonal naive ({task.season})", seasonal, window, 0.0))
    return chosen
