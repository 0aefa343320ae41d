"""Does training through feedback make better forecasters? Lorenz-63, three ways.

Run ``python benchmarks/lorenz_quality.py`` (about 80 s) or ``--quick`` (about 20 s). The
table is printed and written to ``benchmarks/out/lorenz_quality.md``.

Data: Lorenz-63 (sigma 10, rho 28, beta 8/3) integrated by RK4 with dt = 0.01 (the
integrator of ``loopline demo``, `loopline.demo.lorenz`) from random initial conditions,
run onto the attractor first, states normalized by the training mean and std. Model:
x + f(x), f an MLP 3 -> 64 -> 64 -> 3, predicting the next state. The same number of
Adam steps on the same 10-step windows, three ways: one-step teacher forcing (every
input is the truth: `unroll` with `scheduled_sampling(1.0)` gives the same loss,
checked, but runs the steps one after another), `unroll` with the full gradient
through 10 fed-back steps, and `pushforward(max_unroll=4)`.
Quality: `rollout` from held-out initial conditions; the valid time is the first step
whose normalized RMSE exceeds 0.5, in Lyapunov times (1 / 0.906 time units, 110 steps).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

import loopline
from loopline.demo.lorenz import LYAPUNOV_STEPS, integrate, rk4

OUT = Path(__file__).resolve().parent / "out" / "lorenz_quality.md"
LYAPUNOV_TIME_STEPS = LYAPUNOV_STEPS  # about 110 steps per Lyapunov time
THRESHOLD, WINDOW, MAX_UNROLL, BATCH = 0.5, 10, 4, 128
MSE = nn.MSELoss()


def trajectories(steps: int, *, seed: int, batch: int = 64) -> Iterator[torch.Tensor]:
    """Endless Lorenz trajectories `[steps + 1, 3]` from random initial conditions."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        s = torch.randn(batch, 3, generator=generator, dtype=torch.float64) * 10
        for _ in range(1000):  # 10 time units: onto the attractor
            s = rk4(s)
        yield from integrate(s, steps).transpose(0, 1).float()  # batch x [steps + 1, 3]


class Residual(nn.Module):
    """x -> x + f(x): the next state as the current one plus a learned increment."""

    def __init__(self) -> None:
        super().__init__()
        self.f = nn.Sequential(
            nn.Linear(3, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)  # x: [B, 3]


def teacher_forcing_loss(model: nn.Module, window: torch.Tensor) -> torch.Tensor:
    """Every input is the truth: all pairs of the window in one batched call."""
    return MSE(model(window[:-1]), window[1:])  # window: [WINDOW + 1, B, 3]


def check_teacher_forcing(window: torch.Tensor) -> None:
    """The one-step loss is `unroll` with a teacher that always feeds the truth; with every
    input known in advance, the steps run as one batched call instead of ten."""
    model, teacher = Residual(), loopline.scheduled_sampling(1.0)
    forced = loopline.unroll(model, window[0], window[1:], loss_fn=MSE, teacher=teacher)
    assert torch.allclose(forced.loss, teacher_forcing_loss(model, window))


def unroll_loss(model: nn.Module, window: torch.Tensor) -> torch.Tensor:
    return loopline.unroll(model, window[0], window[1:], loss_fn=MSE).loss


def pushforward_loss(model: nn.Module, window: torch.Tensor, generator) -> torch.Tensor:
    out = loopline.pushforward(
        model, window[0], window[1:], loss_fn=MSE, max_unroll=MAX_UNROLL, generator=generator
    )
    return out.loss


def train(method: str, data: torch.Tensor, steps: int, seed: int) -> nn.Module:
    """`steps` Adam steps on random windows `[WINDOW + 1, BATCH, 3]` of `data: [N, T, 3]`."""
    torch.manual_seed(seed)
    model = Residual()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    generator = torch.Generator().manual_seed(seed)
    losses: dict[str, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
        "teacher forcing": teacher_forcing_loss,
        "unroll": unroll_loss,
        "pushforward": lambda m, w: pushforward_loss(m, w, generator),
    }
    for _ in range(steps):
        rows = torch.randint(0, data.shape[0], (BATCH,), generator=generator)
        starts = torch.randint(0, data.shape[1] - WINDOW, (BATCH,), generator=generator)
        window = data[rows[None], starts[None] + torch.arange(WINDOW + 1)[:, None]]
        opt.zero_grad(set_to_none=True)
        losses[method](model, window).backward()
        opt.step()
        schedule.step()
    return model.eval()


def evaluate(model: nn.Module, test: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Valid time of each held-out trajectory in Lyapunov times, and the one-step RMSE."""
    truth = test[1:]  # [T, B, 3]
    outputs = loopline.rollout(model, test[0], len(truth), on_nonfinite="ignore").outputs
    errors = loopline.horizon_error(outputs, truth, per_sample=True)  # [T, B]
    valid = loopline.valid_time(errors, THRESHOLD, dt=1 / LYAPUNOV_TIME_STEPS)  # [B]
    with torch.no_grad():
        one_step = MSE(model(test[:-1]), test[1:]).sqrt().item()
    return valid, one_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, one seed (20 s)")
    quick = parser.parse_args().quick
    torch.set_num_threads(1)
    started = time.perf_counter()
    steps, seeds, horizon = (800, (0,), 1000) if quick else (1800, (0, 1, 2), 1500)
    data = torch.stack(list(itertools.islice(trajectories(2000, seed=100), 32)))  # [N, T, 3]
    mean, std = data.mean(dim=(0, 1)), data.std(dim=(0, 1))
    data = (data - mean) / std
    test = torch.stack(list(itertools.islice(trajectories(horizon, seed=200), 128)), dim=1)
    test = (test - mean) / std  # [T + 1, B, 3], held out: other initial conditions
    check_teacher_forcing(test[: WINDOW + 1])
    rows = []
    for method in ("teacher forcing", "unroll", "pushforward"):
        valid, one_step, seconds = [], [], 0.0
        for seed in seeds:
            start = time.perf_counter()
            model = train(method, data, steps, seed)
            seconds += time.perf_counter() - start
            v, e = evaluate(model, test)
            valid.append(v)
            one_step.append(e)
        pooled = torch.cat(valid)
        per_seed = ", ".join(f"{v.median():.2f}" for v in valid)
        rows.append(
            f"| {method} | {pooled.mean():.2f} | {pooled.median():.2f} | {per_seed} | "
            f"{statistics.mean(one_step):.2e} | {seconds / len(seeds):.1f} |"
        )
    text = "\n".join(
        [
            "## Lorenz-63: valid prediction time by training method\n",
            f"{len(seeds)} seed(s) x {steps} Adam steps (lr 2e-3, cosine), batch {BATCH} "
            f"windows of {WINDOW} steps from 32 trajectories of 2000 steps; {test.shape[1]} "
            f"held-out trajectories rolled out {horizon} steps "
            f"({horizon / LYAPUNOV_TIME_STEPS:.1f} Lyapunov times)."
            + (" --quick." if quick else "")
            + "\n",
            "| method | valid time, mean (LT) | median (LT) | median per seed | "
            "one-step RMSE | train s/seed |",
            "|---|---|---|---|---|---|",
            *rows,
            f"\nValid time: leading steps whose RMSE over the 3 normalized coordinates stays "
            f"within {THRESHOLD}, in Lyapunov times (LT); mean and median over held-out "
            "trajectories of all seeds. One-step RMSE: normalized, from the true state. "
            "pushforward backpropagates one step per sample, so it sees a tenth of the "
            "(input, target) pairs per Adam step that the other two do.",
        ]
    )
    print(text)
    print(f"\n(ran in {time.perf_counter() - started:.0f} s)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text + "\n")


if __name__ == "__main__":
    main()
