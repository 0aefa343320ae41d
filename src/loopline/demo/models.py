"""The demo's forecasters: a model from a state `[B, D]` to the next, by name.

- "quadratic" (`QuadraticField`): one RK4 step of a learned vector field, linear in the
  state's whitened linear and quadratic terms. Lorenz-63's equations have that form, so
  it is the default there: 30 weights that can hold the data's own step exactly.
- "mlp" (`ResidualMLP`): x + 0.1 f(x), f a GELU MLP D -> 64 -> 64 -> D. It assumes no form,
  so it is the default for a CSV series, whose dynamics are anyone's guess.

Both start as the identity (or next to it), so that even the first rollouts stay bounded.
"""

from __future__ import annotations

import torch
from torch import nn

STEP = 0.1  # QuadraticField's RK4 step, in the learned field's units
INCREMENT = 0.1  # the scale of ResidualMLP's learned increment


class QuadraticField(nn.Module):
    """x -> one Runge-Kutta 4 step of a learned vector field g: the next state `[B, D]`.

    g is linear in the state's linear and quadratic terms, [x_i, x_i x_j] (the form of
    Lorenz-63's own equations), taken through a fixed whitening fitted on a sample of the
    training data: decorrelated features of unit variance, on which Adam converges in a
    few thousand steps instead of creeping along the correlated directions. The step is
    `STEP` in the field's units, so that g is of order one on normalized states, and g
    starts at zero: the untrained model is the identity.

    Example:
        >>> import torch
        >>> model = QuadraticField(3, sample=torch.randn(1000, 3))
        >>> model(torch.zeros(5, 3)).shape  # untrained: the identity
        torch.Size([5, 3])
    """

    rows: torch.Tensor  # buffers: the index pairs (i, j) of the quadratic terms, i <= j
    cols: torch.Tensor
    center: torch.Tensor  # [F] the terms' mean over the sample
    whiten: torch.Tensor  # [F, F] centered terms -> uncorrelated features of variance 1

    def __init__(self, dim: int, sample: torch.Tensor | None = None) -> None:
        super().__init__()
        rows, cols = torch.triu_indices(dim, dim)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        count = dim + len(rows)  # features: D linear, D (D + 1) / 2 quadratic
        self.register_buffer("center", torch.zeros(count))
        self.register_buffer("whiten", torch.eye(count))
        if sample is not None:
            self.fit_whitening(sample)
        self.field = nn.Linear(count, dim)
        nn.init.zeros_(self.field.weight)
        nn.init.zeros_(self.field.bias)

    def terms(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, D]` states as their `[B, F]` linear and quadratic terms [x_i, x_i x_j]."""
        return torch.cat([x, x[:, self.rows] * x[:, self.cols]], dim=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The terms of `[B, D]` states, whitened: `[B, F]`."""
        return (self.terms(x) - self.center) @ self.whiten

    @torch.no_grad()
    def fit_whitening(self, sample: torch.Tensor) -> None:
        """Fit the whitening on `[N, D]` states: features of mean 0 and covariance I.

        Directions the sample does not vary in (a variance under 1e-9 of the largest)
        are scaled as if their variance were 1e-9 of it, not divided by zero."""
        terms = self.terms(sample.double())
        center = terms.mean(dim=0)
        variance, axes = torch.linalg.eigh(torch.cov((terms - center).T))  # F >= 2
        variance = variance.clamp_min(1e-9 * float(variance.max().clamp_min(1e-30)))
        self.center.copy_(center)
        self.whiten.copy_(axes / variance.sqrt())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def g(s: torch.Tensor) -> torch.Tensor:
            return self.field(self.features(s))

        k1 = g(x)
        k2 = g(x + STEP / 2 * k1)
        k3 = g(x + STEP / 2 * k2)
        k4 = g(x + STEP * k3)
        return x + STEP / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


class ResidualMLP(nn.Module):
    """x -> x + 0.1 f(x), f an MLP D -> 64 -> 64 -> D with GELU: the next state `[B, D]`.

    A step moves a normalized state by a few hundredths; scaled by `INCREMENT`, f's
    outputs are of order one and the untrained model starts near the identity. Its
    initial weights are drawn from torch's global generator: seed it first.

    Example:
        >>> import torch
        >>> ResidualMLP(2)(torch.zeros(5, 2)).shape
        torch.Size([5, 2])
    """

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.f = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
            nn.Linear(hidden, dim),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + INCREMENT * self.f(x)  # x: [B, D]


MODELS = ("quadratic", "mlp")


def describe(name: str, dim: int) -> str:
    """The forecaster `name` for `dim` features, in words.

    Example:
        >>> describe("quadratic", 3)
        'one RK4 step of a learned field, linear in the 9 whitened linear and quadratic terms of the state (30 weights)'
    """  # noqa: E501
    if name == "quadratic":
        terms = dim + dim * (dim + 1) // 2
        return (
            f"one RK4 step of a learned field, linear in the {terms} whitened linear and "
            f"quadratic terms of the state ({terms * dim + dim} weights)"
        )
    if name == "mlp":
        return f"x + 0.1 f(x), f a GELU MLP {dim}-64-64-{dim}"
    raise _unknown(name)


def build(name: str, dim: int, sample: torch.Tensor | None = None) -> nn.Module:
    """A fresh forecaster `name` (one of `MODELS`) of `dim` features; `sample`, `[N, D]`
    training states, fits the whitening of "quadratic" (the MLP ignores it).

    Example:
        >>> build("quadratic", 3).field
        Linear(in_features=9, out_features=3, bias=True)
    """
    if name == "quadratic":
        return QuadraticField(dim, sample)
    if name == "mlp":
        return ResidualMLP(dim)
    raise _unknown(name)


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown model {name!r}; the models are {', '.join(MODELS)}")
